"""CV Playground: landmark computer-vision models on your own photos and webcam.

    python app.py                       serve the UI on http://127.0.0.1:7860
    python app.py predict TASK IMG...   run one tab's pipeline headless, write images + JSON
    python app.py models                list every checkpoint and whether it is cached
    python app.py download NAME...|all  fetch checkpoints ahead of time
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported anywhere

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from models import checkpoints

    checkpoints.set_offline(args.offline)
    command = args.command or "serve"
    if command in ("serve", "predict"):  # only these run models; listing and downloading never import torch
        from models import runtime

        try:
            runtime.set_device_preference(args.device)
        except ValueError as error:
            return _fail(str(error))
    return {"serve": serve, "predict": predict, "models": list_models, "download": download}[command](args)


def _parser() -> argparse.ArgumentParser:
    def common(parser: argparse.ArgumentParser, defaults: bool) -> None:
        # The same flags work before or after the sub-command; only the top level sets defaults.
        suppress = {} if defaults else {"default": argparse.SUPPRESS}
        parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                            **({"default": "auto"} if defaults else suppress), help="where models run (default: auto)")
        parser.add_argument("--offline", action="store_true", **({"default": False} if defaults else suppress),
                            help="never touch the network; missing checkpoints raise a clear error")

    parser = argparse.ArgumentParser(description="CV Playground", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    common(parser, True)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for a LAN)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--preload", action="store_true", help="load every tab's default model at start-up")
    parser.add_argument("--mcp", action="store_true", help="also serve every tab as an MCP tool for agents "
                        "(at /gradio_api/mcp/sse)")
    sub = parser.add_subparsers(dest="command")

    predict_parser = sub.add_parser("predict", help="run a tab's pipeline on files")
    common(predict_parser, False)
    predict_parser.add_argument("task", help="tab id, e.g. super-resolution")
    predict_parser.add_argument("inputs", nargs="+", help="image files (and video files for face-deid)")
    predict_parser.add_argument("-o", "--output", required=True, help="folder for the results")
    predict_parser.add_argument("--model", help="model name (default: the tab's default)")
    predict_parser.add_argument("--checkpoint", help="your own checkpoint file in the model's official format")
    predict_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a tab option")

    models_parser = sub.add_parser("models", help="list checkpoints")
    common(models_parser, False)
    download_parser = sub.add_parser("download", help="fetch checkpoints ahead of time")
    common(download_parser, False)
    download_parser.add_argument("names", nargs="+", help="checkpoint names, or all")
    return parser


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def build_app():
    import importlib

    import gradio as gr

    from models import tasks

    with gr.Blocks(title="CV Playground") as app:
        gr.Markdown("# CV Playground\nLandmark computer-vision models of the last decade, on your own photos and "
                    "webcam. Each tab shows the result and how the model gets there.")
        with gr.Tabs():
            for demo in (importlib.import_module(f"demos.{tasks.module_name(tab)}") for tab in tasks.TABS):
                with gr.Tab(demo.TITLE, id=demo.ID, elem_id=f"tab-{demo.ID}"):
                    demo.build()
        from models import runtime

        gr.Markdown(f"Models run on **{runtime.describe(runtime.device())}**.", elem_id="device-line")
    app.queue(default_concurrency_limit=2, max_size=64)
    return app


def launch(app, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, **extra):
    import gradio as gr

    return app.launch(server_name=host, server_port=port, share=share, ssr_mode=False, max_file_size="60mb",
                      theme=gr.themes.Soft(), footer_links=["api", "gradio"], **extra)


def serve(args) -> int:
    if args.preload:
        _preload()
    launch(build_app(), args.host, args.port, args.share, mcp_server=args.mcp)
    return 0


def _preload() -> None:
    from models import tasks

    for task in tasks.load_all():
        started = time.perf_counter()
        try:
            task.preload(task.default_model)
            print(f"preloaded {task.id}/{task.default_model} in {time.perf_counter() - started:.1f} s")
        except Exception as error:  # the tab still works for other models; say why this one did not load
            print(f"could not preload {task.id}/{task.default_model}: {error}", file=sys.stderr)


def predict(args) -> int:
    from models import images, tasks, weights

    try:
        task = tasks.get_task(args.task)
        model = task.check_model(args.model or task.default_model)
        options = task.parse_options(args.set)
    except tasks.OptionError as error:
        return _fail(str(error))
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for source in args.inputs:
        started = time.perf_counter()
        stem = Path(source).stem
        try:
            if task.run_video is not None and Path(source).suffix.lower() in task.video_suffixes:
                _predict_video(task, source, outdir / f"{stem}.{task.video_output_suffix.lstrip('.')}",
                               model, args.checkpoint, options, started)
                continue
            loaded = images.load(source, max_side=task.max_side)
            out = task.run(loaded, model=model, checkpoint=args.checkpoint, **options)
        except (images.ImageInputError, weights.WeightsError, ValueError, MemoryError) as error:
            print(f"error: {source}: {error}", file=sys.stderr)
            failures += 1
            continue
        files = {}
        for name, array in out.images.items():
            path = outdir / f"{stem}.{name}.png"
            images.save_png(array, path)
            files[name] = str(path)
        record = {**out.record, "input": str(source), "files": files, "options": options,
                  "total_ms": round((time.perf_counter() - started) * 1000, 1)}
        (outdir / f"{stem}.json").write_text(json.dumps(record, indent=2))
        print(f"{source}: {out.summary} -> {outdir / (stem + '.json')}")
    return 1 if failures else 0


def _predict_video(task, source: str, target: Path, model: str, checkpoint: str | None, options: dict,
                   started: float) -> None:
    record = task.run_video(source, target, model=model, checkpoint=checkpoint, **options)
    record = {**record, "input": str(source), "options": options,
              "total_ms": round((time.perf_counter() - started) * 1000, 1)}
    json_path = target.with_suffix(".json")
    json_path.write_text(json.dumps(record, indent=2))
    print(f"{source}: {record['frames']} frames -> {target}, {json_path}")


def _catalogue() -> dict:
    """Every fetchable checkpoint by name (single files and Hugging Face repositories alike), read from the
    catalogue file so that no model family (and no torch) is imported."""
    from models import checkpoints

    return checkpoints.read_catalogue_file()


def list_models(args) -> int:
    rows = [("task", "name", "size", "license", "status")]
    from models import weights

    for name, entry in _catalogue().items():
        rows.append((entry.task, name, entry.size_text, entry.license, weights.status(entry)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def download(args) -> int:
    from models import weights

    known = _catalogue()
    names = list(known) if args.names == ["all"] else args.names
    unknown = [name for name in names if name not in known]
    if unknown:
        return _fail(f"unknown checkpoint {', '.join(unknown)}; valid: all, {', '.join(known)}")
    failures = 0
    for name in names:
        try:
            path = weights.fetch(known[name])
            print(f"{name}: {path}")
        except weights.WeightsError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
