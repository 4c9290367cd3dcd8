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
    if command in ("serve", "predict"):  # these run models here (batch sets its workers' devices itself)
        from models import runtime

        try:
            runtime.set_device_preference(args.device)
        except ValueError as error:
            return _fail(str(error))
    return {"serve": serve, "predict": predict, "batch": run_batch, "models": list_models,
            "download": download, "doctor": _doctor, "gan-lesson": gan_lesson}[command](args)


def gan_lesson(args) -> int:
    """The L1-versus-GAN experiment headless: the final outputs, histograms and statistics as files."""
    from models import gan_lesson as lesson, gan_lesson_views as views, images

    try:
        *_, report = lesson.run(args.variant, steps=args.steps, seed=args.seed, report_every=max(args.steps, 1),
                                pixel_loss=args.pixel_loss)
    except ValueError as error:
        return _fail(str(error))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gan-lesson-{args.variant}-seed{args.seed}"
    images.save_png(views.side_by_side(report), out / f"{stem}.outputs.png")
    images.save_png(views.histograms(report), out / f"{stem}.histograms.png")
    record = {"variant": args.variant, "steps": report.step, "seed": args.seed, "pixel_loss": report.pixel_loss_name,
              "seconds": round(report.seconds, 2), "stats": lesson.final_stats(report)}
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2))
    pixel, gan = record["stats"][report.pixel_loss_name], record["stats"]["GAN"]
    print(f"{report.pixel_loss_name}: mean {pixel['mean']:.2f}, {pixel['near_modes']:.0%} near 0 or 1; "
          f"GAN: mean {gan['mean']:.2f}, {gan['near_modes']:.0%} near 0 or 1 -> {out / (stem + '.json')}")
    return 0


def _doctor(args) -> int:
    import doctor  # sets the device and the offline switch itself

    return doctor.run(args)


def run_arguments(parser: argparse.ArgumentParser, inputs_help: str, output_help: str) -> None:
    """What `predict` and `batch` both take: a tab, its inputs, an output folder, the model and its options."""
    parser.add_argument("task", help="tab id, e.g. super-resolution")
    parser.add_argument("inputs", nargs="+", help=inputs_help)
    parser.add_argument("-o", "--output", required=True, help=output_help)
    parser.add_argument("--model", help="model name (default: the tab's default)")
    parser.add_argument("--checkpoint", help="your own checkpoint file in the model's official format")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a tab option")


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
    # A Hugging Face Space runs a bare `python app.py`: its address and the talk settings come from the environment.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to serve on (0.0.0.0 for a LAN)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--preload", action="store_true", default=os.environ.get("CVPG_PRELOAD", "") not in ("", "0"),
                        help="load and warm every shown tab's model at start-up (env CVPG_PRELOAD=1)")
    parser.add_argument("--tabs", default=os.environ.get("CVPG_TABS") or None, metavar="TAB[:MODEL],...",
                        help="only these tabs, in this order; tab:model picks the model --preload warms "
                        "(env CVPG_TABS)")
    parser.add_argument("--mcp", action="store_true", help="also serve every tab as an MCP tool for agents "
                        "(at /gradio_api/mcp/sse)")
    sub = parser.add_subparsers(dest="command")

    predict_parser = sub.add_parser("predict", help="run a tab's pipeline on files")
    common(predict_parser, False)
    run_arguments(predict_parser, "image files (and video files for face-deid)", "folder for the results")
    batch_parser = sub.add_parser("batch", help="run a tab over a folder of photos and videos, resumably, on every "
                                  "core and GPU or a cluster (with Ray: requirements-scale.txt)")
    common(batch_parser, False)
    run_arguments(batch_parser, "a folder (its photos and videos) or a glob ('photos/**/*.jpg')",
                  "folder for the results and batch-summary.json")
    import batch

    batch.add_arguments(batch_parser)

    lesson_parser = sub.add_parser("gan-lesson", help="the L1-versus-GAN experiment, headless")
    common(lesson_parser, False)
    lesson_parser.add_argument("-o", "--output", required=True, help="folder for the pictures and the JSON")
    lesson_parser.add_argument("--variant", default="black-white", help="black-white or texture")
    lesson_parser.add_argument("--pixel-loss", default="l2", help="l2 (MSE) or l1")
    lesson_parser.add_argument("--steps", type=int, default=400)
    lesson_parser.add_argument("--seed", type=int, default=0)

    models_parser = sub.add_parser("models", help="list checkpoints")
    common(models_parser, False)
    download_parser = sub.add_parser("download", help="fetch checkpoints ahead of time")
    common(download_parser, False)
    download_parser.add_argument("names", nargs="*", help="checkpoint names, or all")
    download_parser.add_argument("--tabs", default=argparse.SUPPRESS, metavar="TAB[:MODEL],...",
                                 help="also every checkpoint these tabs' models need (tab:model: that model's)")
    doctor_parser = sub.add_parser("doctor", help="the talk checklist: which tabs work offline here, and how fast")
    common(doctor_parser, False)
    doctor_parser.add_argument("--tabs", default=argparse.SUPPRESS, metavar="TAB[:MODEL],...",
                               help="check only these (exit 1 if one would fail offline)")
    doctor_parser.add_argument("--timing", choices=["chosen", "all", "none"], default="chosen",
                               help="time a load and one run of the chosen models (default), every model here, "
                               "or none")
    return parser


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def build_app(tabs: list[str] | None = None, start_models: dict[str, str] | None = None):
    """The Blocks app with `tabs` (tab ids, in that order; default: every tab of models.tasks.TABS); `start_models`
    maps a tab to the model its menu opens on (a talk's `--tabs tab:model`; default: the tab's default model)."""
    import importlib

    import gradio as gr

    import gpu
    from models import tasks

    tabs = list(tasks.TABS) if tabs is None else list(dict.fromkeys(tabs))
    for tab in tabs:
        tasks.get_task(tab)  # an unknown id raises OptionError listing the valid ones
    keep = int(os.environ.get("CVPG_KEEP_OUTPUTS_S", "3600"))  # uploads and results older than this are deleted
    with gr.Blocks(title="CV Playground", delete_cache=(max(60, keep // 4), keep)) as app:
        gr.Markdown("# CV Playground\nLandmark computer-vision models of the last decade, on your own photos and "
                    "webcam. Each tab shows the result and how the model gets there.")
        with gr.Tabs():
            for demo in (importlib.import_module(f"demos.{tasks.module_name(tab)}") for tab in tabs):
                with gr.Tab(demo.TITLE, id=demo.ID, elem_id=f"tab-{demo.ID}"):
                    demo.build()
        from models import runtime

        gr.Markdown(f"Models run on **{runtime.describe(runtime.device())}**.", elem_id="device-line")
    _open_on(app, start_models or {})
    gpu.register(tabs)  # on a ZeroGPU Space, the GPU functions must exist before launch
    app.queue(default_concurrency_limit=2, max_size=64)
    return app


def _open_on(app, start_models: dict[str, str]) -> None:
    """Set each tab's model menu (elem_id "<tab>-model") to its chosen model before the page is first served."""
    from models import tasks

    menus = {block.elem_id: block for block in app.blocks.values() if getattr(block, "elem_id", None)}
    for tab, model in start_models.items():
        menus[f"{tab}-model"].value = tasks.get_task(tab).check_model(model)


def launch(app, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, **extra):
    """Serve `app` with the server-wide limits: queue places per client, upload sizes and kinds (demos/_limits.py).

    A SIGTERM (a container or Space stopping) shuts down like Ctrl-C, so uploads and results are deleted then too."""
    import logging
    import signal
    import threading

    import gradio as gr

    from demos import _limits

    log = logging.getLogger("cvpg")  # refused inputs and stopped jobs in one line each, bugs with their traceback
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    max_file_bytes = 60 * 1024 * 1024  # one upload: a large photo or a short video
    _limits.limit_jobs_per_client(app)
    _limits.keep_sweeping_gradio_cache()
    app_kwargs = extra.pop("app_kwargs", None) or {}
    app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), *_limits.middleware(app, max_file_bytes)]
    if not extra.get("prevent_thread_lock") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    return app.launch(server_name=host, server_port=port, share=share, ssr_mode=False, max_file_size=max_file_bytes,
                      theme=gr.themes.Soft(), footer_links=["api", "gradio"], app_kwargs=app_kwargs, **extra)


def serve(args) -> int:
    import gpu  # first: on a ZeroGPU Space, `spaces` must patch torch before anything touches CUDA

    import doctor
    from models import tasks

    try:
        selection = doctor.parse_tabs(args.tabs)
    except tasks.OptionError as error:
        return _fail(str(error))
    if gpu.on_zero_gpu():
        print("ZeroGPU Space: each model call runs under spaces.GPU")
    if args.preload:
        _preload(selection)
    start_models = {tab: named[0] for tab, named in (selection or {}).items() if named}  # tab:model opens on it
    launch(build_app(list(selection) if selection else None, start_models), args.host, args.port, args.share,
           mcp_server=args.mcp)
    return 0


def _preload(selection: dict | None = None) -> None:
    """Load and warm (one run on a small photo) each shown tab's model: its default, or those named with tab:model."""
    import doctor
    import gpu
    from models import runtime, tasks

    chosen = [(tasks.get_task(tab), model) for tab, named in (selection or dict.fromkeys(tasks.TABS)).items()
              for model in doctor.chosen_models(tasks.get_task(tab), named)]
    if len(chosen) > runtime.MODELS.capacity:
        print(f"note: {len(chosen)} models but the cache keeps {runtime.MODELS.capacity}; set CVPG_MAX_MODELS="
              f"{len(chosen)} or more so none is dropped before its first click", file=sys.stderr)
    for task, model in chosen:
        started = time.perf_counter()
        try:  # ZeroGPU's main process has no real GPU: there the model is loaded, and warms in its first call
            doctor.warm_up(task, model, run=not gpu.on_zero_gpu())
            print(f"preloaded {task.id}/{model} in {time.perf_counter() - started:.1f} s")
        except Exception as error:  # the tab still works for other models; say why this one did not load
            print(f"could not preload {task.id}/{model}: {error}", file=sys.stderr)


def predict(args) -> int:
    import outputs
    from models import tasks

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
        try:
            if outputs.is_video(task, source):
                _predict_video(task, source, outputs.video_path(task, outdir, source), model, args.checkpoint, options,
                               started)
                continue
            result = outputs.run_image(task, source, model, args.checkpoint, options)
        except outputs.input_errors() as error:
            print(f"error: {source}: {error}", file=sys.stderr)
            failures += 1
            continue
        json_path = outputs.write_image_result(outdir, source, result, options)
        print(f"{source}: {result.summary} -> {json_path}")
    return 1 if failures else 0


def _predict_video(task, source: str, target: Path, model: str, checkpoint: str | None, options: dict,
                   started: float) -> None:
    import outputs

    record = outputs.run_video(task, source, target, model, checkpoint, options)
    json_path = outputs.write_video_record(target, source, record, options, outputs.elapsed_ms(started))
    print(f"{source}: {record['frames']} frames -> {target}, {json_path}")


def run_batch(args) -> int:
    import batch
    import batch_ray

    return batch.main(args, ray_engine=batch_ray.run)


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
    names = list(known) if args.names == ["all"] else list(args.names)
    if getattr(args, "tabs", None):
        import doctor
        from models import tasks

        try:
            selection = doctor.parse_tabs(args.tabs) or {}
        except tasks.OptionError as error:
            return _fail(str(error))
        names += [name for tab, named in selection.items() for model in named or tasks.get_task(tab).models
                  for name in doctor.needed_checkpoints(tab, model)]
        names = list(dict.fromkeys(names))
    if not names:
        return _fail("name the checkpoints to fetch (or all), or the tabs: --tabs face-deid,super-resolution")
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
