"""Streamlit-side helpers shared by app.py and the pages: the sidebar, caches
of models and results, and per-session state. The engine lives in apm_viz/."""
