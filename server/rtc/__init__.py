"""The transport: one WebRTC peer per camera, its tracks, the overlay on the video, SDP, aiortc tuning.

Sits above the analysis and the history (it feeds both) and below the web app (`.importlinter`).
"""
