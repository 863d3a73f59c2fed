"""The figures layer: every figure the app shows and every slide figure the
exports write, one module per thing shown, screen (plotly) and slides
(matplotlib, true vectors) side by side.

- `style`: the slide styles (light, dark) and the screen font.
- `maps`: the input image, island maps and scalar maps; the row of maps the
  comparison slides build on.
- `projections`: the 2-D / 3-D scatter of a frame and its camera.
- `curves`: curves over TTT iterations and log-axis ticks.
- `islands`: the Islands page's slides and films from a finished run (`Talk`).
- `compare`: Teacher vs APM.
- `interpolation`: the latent walk.
- `video`: the boring video.
- `classification`: test-time classification.
- `efficiency`: the paper's Fig. 2 on this machine.

Figures take plain arrays or finished results and return a figure (or RGB
frames); none computes a model or a projection. `apm_viz.render` turns them
into bytes and `apm_viz.export` into files.
"""
