"""The open sessions, and the cap on how many run at once."""

from __future__ import annotations

import asyncio
import secrets

from server.analysis.worker import AnalysisWorker
from server.history.feed import SessionPassages
from server.metrics import ServerMetrics
from server.rtc.session import PeerSession, RecorderFactory
from server.settings import IceServer


class CapacityError(RuntimeError):
    """The server already runs its maximum number of sessions."""


def new_session_id() -> str:
    return secrets.token_urlsafe(6)


class SessionRegistry:
    """The open sessions; refuses a new one beyond `max_sessions`."""

    def __init__(self, max_sessions: int, metrics: ServerMetrics) -> None:
        self.max_sessions = max_sessions
        self._metrics = metrics
        self._sessions: dict[str, PeerSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> PeerSession | None:
        return self._sessions.get(session_id)

    def sessions(self) -> list[PeerSession]:
        return list(self._sessions.values())

    def create(
        self,
        ice_servers: tuple[IceServer, ...],
        worker: AnalysisWorker,
        idle_timeout: float,
        recorder_factory: RecorderFactory | None = None,
        passages: SessionPassages | None = None,
        label_text: bool = True,
        overlay: str = "server",
    ) -> PeerSession:
        """Reserve a place at once (before any await), so that concurrent offers cannot overbook.
        `label_text`: whether the video names the classes (False: colour and symbol only)."""
        if len(self._sessions) >= self.max_sessions:
            raise CapacityError(f"the server is at capacity ({self.max_sessions} sessions)")
        session_id = new_session_id()
        while session_id in self._sessions:
            session_id = new_session_id()
        session = PeerSession(
            session_id,
            ice_servers,
            worker,
            self._metrics,
            idle_timeout,
            self._remove,
            recorder_factory,
            passages,
            label_text,
            overlay,
        )
        self._sessions[session_id] = session
        self._metrics.active_sessions.set(len(self._sessions))
        return session

    def _remove(self, session: PeerSession) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        self._metrics.active_sessions.set(len(self._sessions))

    async def close_all(self, cause: str = "shutdown") -> None:
        sessions = list(self._sessions.values())
        if sessions:
            await asyncio.gather(*(session.close(cause) for session in sessions), return_exceptions=True)
