"""The compliance history: passages from each session, the writer thread, the database, the API routes.

Knows nothing of WebRTC: the sessions hand it their passages (`HistoryService.session_passages`), and it
keeps what `/api/live` shows itself.
"""
