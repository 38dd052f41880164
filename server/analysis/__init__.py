"""The analysis: the analyser seam, the one worker thread, and the models in their child process.

Knows nothing of WebRTC or the history; the transport hands it frames and takes its results.
"""
