"""hwperf's faces: the ``hwperf`` command line, display helpers and the Streamlit app's helpers.

Faces sit over the public API of simulator, hwspecs, workloads and validate and are the only place
prefixed units (ms, GB, TFLOP/s) appear. Imports point one way: faces → the model layers, never back
(tests/test_errors_and_layering.py enforces it). Nothing is imported here so that ``from faces import
display`` stays as light as the display module itself.
"""
