"""The station's FastAPI app on Ray Serve: many lines' archives and fleet views on a cluster.

    from ray import serve
    serve.run(station_deployment(StationConfig(db_url="postgresql://..."), num_replicas=2))

Every route of ``lineguard serve`` answers unchanged (``serve.ingress`` wraps the very
app :func:`lineguard.server.app.create_app` builds), recording into the station's
database: PostgreSQL once several replicas write. One route is added,
``POST /api/v1/scale/score`` (image + product -> verdict and score, nothing recorded),
for archive look-ups and fleet views: concurrent requests are gathered by
``serve.batch`` into one model call, and ``serve.multiplexed`` keeps the models of the
products a replica last served loaded, so a client that sends the
``serve_multiplexed_model_id: <product>`` header is routed to a replica that has that
product's model already. Replicas per product are a config change (``num_replicas``,
or one deployment per product group).

The PLC-facing loop stays on the station PC: a line's deadline never waits on a network
hop to a cluster.
"""
# No ``from __future__ import annotations``: FastAPI reads the route's parameter types
# (UploadFile, imported inside station_deployment) at definition time.
import os
from typing import Any, Callable, Optional

from ..line.scale import require_ray

SCORE_ROUTE = "/api/v1/scale/score"
DEFAULT_NAME = "lineguard-station"

# the registry's answer for a product no model was ever uploaded for says how to get one
# (ModelRegistry.no_model_hint): a station's ends "or start the station with `lineguard serve
# --model ...`", and behind Serve there is no such start, every replica judges with the
# versions uploaded to the station. Each replica's registry says these words instead.
SERVE_NO_MODEL_HINT = ("Upload one with POST /api/v1/models (engineer key) or on the Models page (an engineer's "
                       "sign-in); every replica judges with the product's active version (`lineguard serve-ray` "
                       "takes no --model)")


def replica_number() -> str:
    """This Serve replica's number in its deployment (0, 1, ...: Serve's rank, which a
    replica started in place of a dead one takes over), or its unique tag where Serve
    gives no rank. Only inside a replica."""
    from ray import serve
    ctx = serve.get_replica_context()
    rank = getattr(ctx, "rank", None)
    rank = getattr(rank, "rank", rank)          # Ray 2.60: a ReplicaRank; a plain int before
    return str(rank) if isinstance(rank, int) else str(ctx.replica_tag)


def replica_process(number: str, name: str = DEFAULT_NAME) -> str:
    """The name a replica's start and run are recorded under (``... on HOST:DATA`` added):
    one per replica, so the line view and the shift report see N processes, and the
    second replica's start is not read as a 0.6 s outage of the first."""
    return f"serve-ray replica {number}" if name == DEFAULT_NAME else f"serve-ray {name} replica {number}"


def serve_app(config: Any, loader: Optional[Callable[..., Any]] = None, trainer: Optional[Callable[..., Any]] = None,
              replica: Callable[[], str] = replica_number, name: str = DEFAULT_NAME) -> Any:
    """The station app as each replica runs it: its run recorded as ``serve-ray replica N``,
    every /metrics series labelled ``replica="N"`` (each scrape through Serve's proxy lands
    on one replica: Prometheus sums them, ``sum without(replica) (rate(...))``), and the
    unknown-product answer saying to upload a model, not to start one with --model.
    ``replica``: the replica's number, asked at start-up in the replica."""
    from contextlib import asynccontextmanager

    from .app import create_app

    app = create_app(config, loader=loader, trainer=trainer, process=lambda: replica_process(replica(), name),
                     metric_labels=lambda: {"replica": replica()})
    station_start = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi_app: Any) -> Any:
        # the station opens in the replica, at start-up: its registry says Serve's way to a
        # model from then on, to the scoring route and every other answer alike
        async with station_start(asgi_app) as state:
            asgi_app.state.station.models.no_model_hint = SERVE_NO_MODEL_HINT
            yield state

    app.router.lifespan_context = lifespan
    return app


class ProductModel:
    """What a replica keeps per product for ``serve.multiplexed``: the product, resolved to
    the model its parts are judged by at every batch, as the station judges a part (the
    active version, the station's cache of loaded models). The loaded model itself was kept
    before: after a new version was activated, or a rollback, the scoring route went on
    answering with the old one for as long as the replica lived, while /api/v1/inspections
    on the same replica used the new one."""

    def __init__(self, station: Any, product: str) -> None:
        self.station = station
        self.product = product

    def current(self) -> Any:
        """The loaded model of the product's active version (NoActiveModel: none; the
        active version is read again at most every registry.ACTIVE_TTL_S)."""
        models = self.station.models
        return models.inspector(models.active_for(self.product, ""))


def station_deployment(config: Any, loader: Optional[Callable[..., Any]] = None,
                       trainer: Optional[Callable[..., Any]] = None, num_replicas: int = 1,
                       max_models_per_replica: int = 4, max_batch_size: int = 8,
                       batch_wait_timeout_s: float = 0.01, name: str = DEFAULT_NAME) -> Any:
    """A bound Serve application (pass it to ``serve.run``) of the station app.

    ``config``: the :class:`~lineguard.line.config.StationConfig` every replica opens its
    station with; ``loader``/``trainer``: as for ``create_app`` (tests pass a fake model).
    """
    require_ray()
    from fastapi import Depends, File, Form, Request, UploadFile
    from fastapi.concurrency import run_in_threadpool
    from ray import serve

    from .deps import require

    app = serve_app(config, loader=loader, trainer=trainer, name=name)

    async def an_operator(request: Request) -> Any:
        # require("operator") itself as the dependency loses its string annotations when
        # Serve ships the class to a replica (FastAPI then took `request` for a query field)
        return await require("operator")(request, request.app.state.station, None, None)

    @serve.deployment(name=name, num_replicas=num_replicas, ray_actor_options={"num_cpus": 1})
    @serve.ingress(app)
    class StationDeployment:
        @serve.multiplexed(max_num_models_per_replica=max_models_per_replica)
        async def model_for(self, product: str) -> "ProductModel":
            # the product, not its model, is what Serve keeps: it kept the model loaded first
            # and scored with it after another version was activated or rolled back to
            pm = ProductModel(app.state.station, product)
            await run_in_threadpool(pm.current)   # an unknown product raises here, and is not kept
            return pm

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s)
        async def _score(self, jobs: list[tuple[str, bytes]]) -> list[Any]:
            """One model call per product in the batch; a part that fails answers with its
            own error (returned, raised by its request) and never fails the others."""
            from ..line.errors import CorruptImage, ImageTooLarge, PhotoTooDeep
            from ..vision.errors import ImageError, ImageTooLarge as HeaderTooLarge, PhotoTooDeep as TooDeep
            from ..vision.imageio import load_photo_for
            max_pixels = app.state.station.config.max_image_pixels
            answers: dict[int, Any] = {}
            by_product: dict[str, list[int]] = {}
            for i, (product, _) in enumerate(jobs):
                by_product.setdefault(product, []).append(i)
            for product, idx in by_product.items():
                try:
                    insp = await run_in_threadpool((await self.model_for(product)).current)
                except Exception as exc:  # noqa: BLE001 - no active model: each request's own 404
                    answers.update((i, exc) for i in idx)
                    continue
                ok, images = [], []
                for i in idx:
                    # as the station decodes a part: within its pixel limit, a 16-bit photo
                    # scaled by the model's camera depth (read as 16-bit, a 12-bit photo
                    # would be judged 16 times too dark)
                    try:
                        images.append(await run_in_threadpool(load_photo_for, insp, jobs[i][1], max_pixels))
                        ok.append(i)
                    except HeaderTooLarge as exc:
                        answers[i] = ImageTooLarge(f"the image {exc.problem}; send a smaller image (downscale or "
                                                   "crop it) or raise the station's pixel limit")
                    except TooDeep as exc:
                        answers[i] = PhotoTooDeep(f"the photo {exc.problem}; {exc.hint}")
                    except ImageError as exc:
                        answers[i] = CorruptImage(f"the image could not be read ({exc}); send a PNG or JPEG")
                if not images:
                    continue
                if hasattr(insp, "inspect_batch"):
                    results = await run_in_threadpool(insp.inspect_batch, images)
                else:   # an inspector without batches (the tests' fake one)
                    results = [await run_in_threadpool(insp.inspect, im) for im in images]
                for i, r in zip(ok, results):
                    answers[i] = {"product": product, "verdict": r.verdict.value, "score": float(r.score),
                                  "threshold": float(r.threshold), "regions": [g.to_dict() for g in r.regions],
                                  "model_id": r.model_id, "model_version": r.model_version,
                                  "photo_issues": list(r.photo_issues), "batch_size": len(jobs)}
            return [answers[i] for i in range(len(jobs))]

        @app.post(SCORE_ROUTE, summary="Score one part with the product's active model (nothing recorded)",
                  tags=["scale"])
        async def score(self, image: UploadFile = File(...), product: str = Form(..., min_length=1),
                        _caller: Any = Depends(an_operator)) -> dict:
            # an operator key or session, as for inspecting a part: without one, anyone on the
            # network scored photos with the plant's models (verdict, threshold, model id)
            answer = await self._score((product, await image.read()))
            if isinstance(answer, Exception):
                raise answer   # the app's handlers turn a StationError into its JSON 4xx
            return answer

    return StationDeployment.bind()


def replicas_problem(num_replicas: int, cpus: float) -> Optional[str]:
    """Why ``num_replicas`` cannot all start on a Ray with ``cpus`` CPUs (each replica
    takes one), or None. Serve waited for the CPUs for ever: the docs' 4 replicas on a
    2-core PC left ``serve.run`` hanging with only Ray's "cannot be scheduled" warnings."""
    if num_replicas < 1:
        return f"--replicas {num_replicas}: give at least 1"
    if num_replicas > cpus:
        return (f"--replicas {num_replicas}: each replica takes one CPU and this Ray has {cpus:g}; give --replicas "
                f"{int(cpus) or 1} or fewer (or --num-cpus, or join a cluster with more CPUs: --ray ADDRESS)")
    return None


def port_problem(host: str, port: int) -> Optional[str]:
    """Why Serve's HTTP proxy cannot listen on ``host:port`` (taken by another process), or None.
    Checked first: Serve's proxy retried the taken port behind the scenes, and the command
    waited without a word."""
    import socket
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        return (f"cannot listen on {host}:{port} ({exc.strerror or exc}): another program (a `lineguard serve`, "
                "an earlier run still stopping) has that port; stop it or give --port")
    return None


def database_problem(config: Any) -> Optional[str]:
    """Why the station's PostgreSQL database cannot be reached, or None. Knocked on first:
    replicas that could not open it failed in Serve's retries, ending 20 s later in
    "Failed to update the deployments" with the cause only in the replicas' tracebacks."""
    url = config.database_url
    if not url.startswith("postgresql"):
        return None        # SQLite: the station makes its file in the data folder
    from ..line.db import knock, server_address
    exc = knock(url, timeout_s=5)
    if exc is None:
        return None
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return (f"cannot reach the station database at {server_address(url)}: {said}. Check that PostgreSQL runs "
            "there and the URL (--db / LINEGUARD_DB)")


# Serve kills an HTTP proxy not ready in 5 s and checks it every 10 s: on a 2-core PC busy with
# the station's own work its proxy was killed at start ("ActorDiedError ... killed by ray.kill"),
# and every request refused. Read by the cluster Ray starts here (its processes take this
# process's environment); a cluster already running keeps its own. A setting given stays.
SERVE_PROXY_PATIENCE = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60"}


def give_serve_time_to_start() -> None:
    for name, value in SERVE_PROXY_PATIENCE.items():
        os.environ.setdefault(name, value)


def run_station(config: Any, *, ray_address: str = "local", num_cpus: Optional[int] = None,
                host: str = "127.0.0.1", port: int = 8000, num_replicas: int = 1, max_models_per_replica: int = 4,
                stop: Any = None, say: Callable[[str], None] = print, name: str = DEFAULT_NAME,
                loader: Optional[Callable[..., Any]] = None, trainer: Optional[Callable[..., Any]] = None) -> None:
    """Run the station app on Ray Serve until ``stop`` (a ``threading.Event``) is set, then
    stop it cleanly: every replica closes its station (its run recorded as stopped, not
    as an outage), then the private Ray of ``ray_address="local"`` is shut down.

    ``serve.run`` alone, as the docs had it, returns at once: a script that ends there takes
    its private Ray, and the station with it, down on exit; and SIGTERM killed the replicas
    without closing their stations. ``ValueError``: a setting that cannot run (replicas
    past the CPUs, a port taken), said before anything starts."""
    import threading

    from ..line.scale import connect
    from ..line.scale.rescore import ray_processes_in_their_own_group
    # no replica is never a setting, on a cluster too (its autoscaler adds CPUs, not replicas):
    # a cluster's 0 was only warned about, and went on to deploy no replica at all
    why = (replicas_problem(num_replicas, 0) if num_replicas < 1 else None) \
        or port_problem(host, port) or database_problem(config)
    if not why and ray_address == "local":
        # a private Ray has this machine's CPUs (or --num-cpus): more replicas than that were
        # refused only once it had started (seconds, and Ray's warnings, for a known answer);
        # checked again against what Ray counts once it runs
        import os
        why = replicas_problem(num_replicas, float(num_cpus or os.cpu_count() or 1))
    if why:
        raise ValueError(why)
    ray = require_ray()
    ours = not ray.is_initialized()
    stop = stop if stop is not None else threading.Event()
    give_serve_time_to_start()
    if ours and ray_address == "local":
        with ray_processes_in_their_own_group():
            connect(ray_address, num_cpus)
    else:
        connect(ray_address, num_cpus)
    serve = None
    try:
        cpus = float(ray.cluster_resources().get("CPU", 0))
        why = replicas_problem(num_replicas, cpus)
        if why and ray_address == "local":
            raise ValueError(why)
        if why:      # a cluster may add nodes (an autoscaler): said, not refused
            say(f"warning: {why}; replicas without a CPU wait until one is free")
        from ray import serve
        serve.start(http_options={"host": host, "port": port})
        serve.run(station_deployment(config, loader=loader, trainer=trainer, num_replicas=num_replicas,
                                     max_models_per_replica=max_models_per_replica, name=name),
                  name=name, route_prefix="/")
        say(f"station on Ray Serve at http://{host}:{port}/ ({num_replicas} replica{'s' * (num_replicas != 1)}, "
            f"Ray {ray_address}); Ctrl-C or SIGTERM stops it")
        while not stop.wait(0.5):
            pass
        say("stopping: each replica closes its station")
    finally:
        if serve is not None:
            try:
                # replicas are stopped gracefully: each app's shutdown closes its station
                serve.shutdown()
            except Exception as exc:  # noqa: BLE001 - a Ray already gone: nothing left to stop
                say(f"warning: Serve did not stop cleanly ({exc})")
        if ours:
            ray.shutdown()
