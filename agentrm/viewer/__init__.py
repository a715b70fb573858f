"""`agentrm view`: a local web viewer for agentic traces (runs, sample table, episodes, pairs, run diffs).

    agentrm view out/traces          # or: from agentrm.viewer.app import create_app

- index.py   SQLite index of the JSONL files (summary columns + byte offsets; incremental as files grow)
- query.py   sample-table filters/sorting, run summaries, neighbours for keyboard paging, run comparison
- thumbs.py  frame thumbnails decoded on demand with agentrm.video and cached on disk as JPEG
- app.py     the FastAPI app (JSON API, frames, static files; path-traversal and Host checks)
- server.py  port selection, loopback-by-default launch, a background server for tests
- synth.py   schema-true synthetic traces and a demo folder (tests, benchmark, screenshots)
- static/    the front end: plain HTML, CSS and ES modules, no build step, no CDN

Nothing here is imported by `import agentrm.viewer`; fastapi/uvicorn (the `viewer` extra) load with app/server.
"""
