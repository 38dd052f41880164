"""Tests in layers: vision functions, tracks on fake sources, aiortc peers, a real browser."""
