"""The mask-check server. The root holds the web side (app, settings, security, TLS, metrics, logs); each
other concern is a room of its own: `rtc/` (transport), `analysis/`, `history/`. docs/ARCHITECTURE.md
("Rooms") has the map and the layers that `.importlinter` enforces.
"""
