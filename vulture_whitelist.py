"""Names that `vulture --min-confidence 60` takes for unused, and why each is used (tests/test_lint.py).

Vulture reads this file as code: each line below "uses" a name. A line belongs here only with its reason;
anything else vulture reports outside tests is dead code to delete.
"""

# ruff: noqa: B018
# mypy: ignore-errors
_ = object()

# Fields of bench.client.ClientResult: written to the benchmark's JSON by dataclasses.asdict.
_.duration_s
_.window_start_unix
_.window_end_unix
_.fps_received
_.code_readable
_.detections_per_s
_.latency_p50_ms
_.latency_p95_ms
_.latency_first5s_ms
_.latency_last5s_ms
_.latency_growth
_.server_inference_ms_p50
_.latency_by_second_ms
_.sent_kbps_by_second
_.received_kbps_by_second
_.client_cpu_percent

# Fields of bench.cheap_cameras.CameraResult: written to the benchmark's JSON by dataclasses.asdict.
_.analysed_per_s
_.messages_lost
_.transit_min_ms
_.label_agreement_truth
_.faces_entered
_.faces_found
_.time_to_find_p50_s
_.time_to_find_max_s
_.connected_at_end
_.silent_at_end

# Event handlers registered by aiortc's decorators (`@pc.on("track")`, `@channel.on("message")`).
_.on_message
_.on_track

# Attributes set on third-party objects, read by those libraries: PyAV codec contexts and frames
# (pix_fmt, framerate, thread_count, gop_size, qmin, qmax, pict_type), onnxruntime SessionOptions
# (thread counts), torch.backends.cudnn.benchmark.
_.pix_fmt
_.framerate
_.thread_count
_.gop_size
_.qmin
_.qmax
_.pict_type
_.intra_op_num_threads
_.inter_op_num_threads
_.benchmark

# Replaced in aiortc and aioice for their own use: the cheap cameras' sender asks the track for a
# keyframe (`RTCRtpSender._send_keyframe`); aioice reads `UDP_SOCKET_BUFFER_SIZE` for its sockets.
_._send_keyframe
_.UDP_SOCKET_BUFFER_SIZE

# SQLAlchemy "connect" listener registered by @sa.event.listens_for (server/history/store.py).
_._pragmas

# Counters kept for observation: tests assert on them to prove what the code did (answers shared, not
# recomputed; frames written by the recorder; blinks bridged by the passage rule; faces followed by flow).
_.computed
_.frames_written
_.blinks
_.flow_follows

# HistoryWriter.flush: the tests' way to wait for the writer thread; the server stops it with stop().
_.flush

# paho-mqtt's callbacks, set as attributes of its client and called by its network thread
# (server/events/mqtt.py).
_.on_connect
_.on_disconnect
