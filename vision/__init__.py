"""Pure computer-vision core: face detection, mask classification and drawing.

Plain synchronous code with no asyncio or web imports, so every piece can be tested on a single image
and reused from the server, the training code and the command line alike.
"""
