"""Events out to the building: what the server knows, sent to MQTT (with Home Assistant discovery) and to
signed webhooks, delivered at least once through the durable spool (`server.spool`).

Fed by the history (each stored passage, today's counts) and by the sessions (each location's live
verdict); sits above `server.history` and below `server.rtc` / `server.app` in the layer contract.
"""
