"""The App: owns start-up, every long-lived task, reload and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from hookd import __version__
from hookd._systemd import Notifier, watchdog_loop
from hookd.activity import ActivityRoutes
from hookd.api import Api
from hookd.auth import auth_middleware
from hookd.backlog_routes import BacklogRoutes
from hookd.batcher import Batcher
from hookd.catalogue import trigger_problems
from hookd.clock import Clock, LoopClock
from hookd.config import ApiWebhook, Config, ConfigError, reload_config
from hookd.deliver import Dispatcher
from hookd.http import Sender
from hookd.ingest import Ingest, Routing
from hookd.internal_ingest import InternalIngest
from hookd.listener import AcceptErrors, AcceptSite, ServerLog, body_deadline
from hookd.manage import ApiWebhooks, Check
from hookd.manage_routes import WebhookRoutes
from hookd.metrics import Metrics
from hookd.models import IdFactory
from hookd.recover import Recovery
from hookd.store import Store
from hookd.tasks import TaskSet
from hookd.webhooks import address_check, compose

log = structlog.get_logger("hookd")

PRUNE_EVERY = 3600.0
# The longest request line the listener takes (aiohttp's default is 8,190 bytes).
MAX_REQUEST_LINE = 65536


class App:
    """One running daemon: store, router, batcher, dispatcher and the HTTP listener."""

    def __init__(
        self,
        config: Config,
        config_path: Path | None = None,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config_path = config_path
        self.clock = clock or LoopClock()
        self.notifier = notifier or Notifier()
        self.ids = IdFactory()
        self.metrics = Metrics()
        self.store = Store(config.storage.path, config.storage.durability, self.clock)
        d = config.delivery
        self.sender = Sender(d.timeout_seconds, d.connect_timeout_seconds, d.max_response_bytes)
        # The dispatcher tells of operator events (SPEC §12); they come back in through
        # the internal ingest, which routes them with the routing in force.
        self.dispatcher = Dispatcher(
            self.clock, self.store, self.sender, self.metrics, lambda event, obj: self.operator.emit(event, obj)
        )
        self.batcher = Batcher(self.clock, self.store, self.ids, self.dispatcher.submit)
        self.recovery = Recovery(self.store, self.dispatcher.submit, self.ids, self.clock.now)
        self.routing = Routing.build(config)
        self.file_config = config  # the file's part of the config in force (SPEC §11)
        self._reload_lock = asyncio.Lock()  # one change of the routing at a time: reload or API
        self.api_webhooks = ApiWebhooks(
            self.store, self._apply_api, lambda: self.file_config, self._reload_lock, self._webhook_checks
        )
        self.operator = InternalIngest(
            lambda: self.routing, self.store, self.batcher, self.dispatcher.submit, self.ids, self.clock, self.metrics
        )
        self.accepting = False
        self.port: int | None = None
        self.ready = asyncio.Event()
        self._started = asyncio.Event()  # a SIGHUP before this waits for start-up to finish
        self._stop = asyncio.Event()
        self._tasks = TaskSet()  # reloads started by SIGHUP
        self.metrics.watch(self._gauges)

    @property
    def config(self) -> Config:
        """The config in force."""
        return self.routing.config

    # -- start-up and shutdown -----------------------------------------------------------

    async def serve(self, shutdown_trigger: asyncio.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT (or ``shutdown_trigger``), then stop cleanly."""
        stop = shutdown_trigger or self._stop
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        runner: web.AppRunner | None = None
        try:
            # Handlers go in before the listener accepts anything, so a SIGHUP sent as soon
            # as /healthz answers is a reload, never the default action (termination);
            # inside the try, so that a start that fails takes them out again.
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGHUP, lambda: self._tasks.spawn(self.reload(), name="reload"))
            await self.store.open()
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(self.store.writer(), name="store-writer")
                watch = tg.create_task(self.store.watch(), name="store-watch")
                poller = tg.create_task(self._poll_spool(), name="spool-poller")
                pruner = tg.create_task(self._prune(), name="pruner")
                watchdog = tg.create_task(self._watchdog(), name="watchdog")
                try:
                    config = compose(self.file_config, await self.api_webhooks.load())
                except ValueError as exc:
                    raise ConfigError(self.config_path or Path("config"), [str(exc)]) from None
                restored, restored_items = await self._take_up(config, None)
                runner = await self._listen()
                self.accepting = True
                log.info(
                    "started", version=__version__, listen=f"{self.config.server.host}:{self.port}",
                    port=self.port, webhooks=len(self.config.webhooks), pending_deliveries=restored,
                    batched_items=restored_items, startup_ms=round((time.monotonic() - started) * 1000, 1),
                )  # fmt: skip
                self.notifier.ready(self._status())
                self.ready.set()
                self._started.set()
                await stop.wait()
                await self._shutdown(runner, [poller, pruner, watchdog, watch, writer])
                runner = None
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if runner is not None:
                await runner.cleanup()
            await self.sender.close()
            await self.store.close()

    async def _listen(self) -> web.AppRunner:
        server = self.config.server
        timeout = server.client_timeout_seconds
        app = web.Application(
            middlewares=[
                body_deadline(timeout),
                auth_middleware(lambda: self.config.server.tokens),
            ],
            client_max_size=server.max_body_bytes + 1,
        )
        ingest = Ingest(
            lambda: self.routing, self.store, self.batcher, self.dispatcher, self.ids, self.clock,
            self.metrics, lambda: self.accepting,
        )  # fmt: skip
        app.router.add_post("/v1/events", ingest.handle)
        api = Api(
            lambda: self.config, self.store, self.dispatcher, self.ids, self.metrics, self.clock.now,
            self.api_webhooks.etag, self.batcher.waiting,
        )  # fmt: skip
        api.add_routes(app)
        BacklogRoutes(lambda: self.config, self.store, self.batcher, self.recovery).add_routes(app)
        ActivityRoutes(lambda: self.config, self.store, self.clock.now).add_routes(app)
        WebhookRoutes(
            self.api_webhooks, api.view, lambda: self.routing, self.store, self.dispatcher, self.ids, self.clock.now
        ).add_routes(app)
        with contextlib.suppress(ImportError):
            from hookd.ui import add_routes as add_ui_routes

            add_ui_routes(app)
        # keepalive_timeout closes a connection idle, or still short of a whole request
        # head, that long after it opened or last answered: aiohttp has no header timeout.
        # max_line_size: a search within the documented limits (four ids of up to 1,024
        # characters, percent-encoded UTF-8) makes a request line of up to about 50 KB;
        # aiohttp's default of 8,190 bytes would refuse it as text/plain before hookd saw it.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            keepalive_timeout=timeout,
            max_line_size=MAX_REQUEST_LINE,
            logger=ServerLog(logging.getLogger("aiohttp.server")),
        )
        await runner.setup()
        site = AcceptSite(runner, server.listen, server.host, server.port, AcceptErrors(self.metrics.accept_errors.inc))
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self.port = site.port
        return runner

    async def _shutdown(self, runner: web.AppRunner, tasks: list[asyncio.Task[Any]]) -> None:
        """The stop checklist, in order; the writer task goes last."""
        t0 = time.monotonic()
        grace = self.config.server.shutdown_grace_seconds
        # 1. Refuse new events (503 + Retry-After) but keep answering while we drain.
        self.accepting = False
        self.notifier.stopping()
        log.info("stopping", inflight=self.dispatcher.inflight, grace_seconds=grace)
        # 2. Cut recoveries short: the resends they made are pending in the store.
        await self.recovery.stop()
        # 3. Let in-flight attempts finish within the grace period; the rest stay pending.
        cut = await self.dispatcher.stop(grace)
        # 2b. Operator events those attempts caused go into the store (their deliveries wait there).
        await self.operator.stop(grace)
        # 3. Disarm batch timers: open batches are already in the store.
        open_batches = len(self.batcher.open)
        await self.batcher.stop()
        # 5. Close the listener.
        await runner.cleanup()
        # 6. Stop the background tasks, the writer last so it commits what they queued.
        for t in tasks[:-1]:
            t.cancel()
        await asyncio.gather(*tasks[:-1], return_exceptions=True)
        # Writes that keep failing (a lock held elsewhere, a full disk) get the grace period
        # too; then the store gives them up, logged, and the next start takes their work up.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.store.drain()
        tasks[-1].cancel()
        await asyncio.gather(tasks[-1], return_exceptions=True)
        self._tasks.cancel()
        log.info(
            "stopped", cut_attempts=cut, open_batches=open_batches,
            queued=sum(self.dispatcher.queued().values()), flushes=self.store.flushes,
            stop_ms=round((time.monotonic() - t0) * 1000, 1),
        )  # fmt: skip

    # -- reload --------------------------------------------------------------------------

    def _configure(self, config: Config) -> None:
        self.routing = Routing.build(config)
        self.batcher.configure(config.webhooks, config.batching.spool_after_seconds)
        d = config.delivery
        self.dispatcher.configure(config)
        # Before any attempt the dispatcher just started runs: they run at the next await.
        self.sender.configure(
            d.timeout_seconds, d.connect_timeout_seconds, d.max_response_bytes, self.dispatcher.destinations()
        )

    async def _take_up(self, config: Config, known: set[str] | None) -> tuple[int, int]:
        """Make ``config`` the live one, reloading the pending work of its webhooks that are
        new to this process (all of them at start-up, when ``known`` is None).

        The store is read before the new routing goes live, so nothing ingested for those
        webhooks meanwhile can be taken up twice.
        """
        fresh = [w.id for w in config.webhooks if known is None or w.id not in known]
        # Writes still queued (a batch taking items, an outcome) must be in before the read,
        # or a webhook removed and re-added could take up work that was already done.
        await self.store.drain()
        pending = await self.store.open_work(fresh, self.clock.now())
        batches = await self.batcher.read_open(set(fresh), config.webhooks, config.batching.spool_after_seconds)
        self._configure(config)
        restored = self.dispatcher.restore(pending), self.batcher.restore(batches)
        await self.sender.close_retired()
        return restored

    async def reload(self) -> bool:
        """Re-read the config file; on any error keep the config in force."""
        if self.config_path is None:
            return False
        await self._started.wait()
        async with self._reload_lock:
            return await self._reload(self.config_path)

    async def _reload(self, path: Path) -> bool:
        self.notifier.reloading()
        old = self.config
        try:
            # What would be in force (restart-only keys kept) is checked, not just the file.
            new_file, kept = reload_config(Config.load(path), self.file_config, path)
            try:
                new = compose(new_file, self.api_webhooks.webhooks())
            except ValueError as exc:
                raise ConfigError(path, [str(exc)]) from None
            # A catalogue change must not strand an API webhook on a type it no longer lists.
            stranded = [
                f"API webhook {w.id!r}: {p.path}: {p.message}"
                for w in self.api_webhooks.webhooks()
                for p in trigger_problems(w, new_file.event_types)
            ]
            if stranded:
                raise ConfigError(path, stranded)
        except ConfigError as exc:  # the operator's edit, refused; the daemon runs on as it was
            log.warning("reload_failed", errors=exc.problems, path=str(path))
            self.notifier.ready(self._status())
            return False
        except Exception as exc:  # whatever the file holds, the running config stays
            log.error("reload_failed", errors=[repr(exc)], path=str(path))
            self.notifier.ready(self._status())
            return False
        if kept:
            log.warning("reload_needs_restart", keys=kept)
        # Webhooks new to this process (or back after removal) pick up what they left.
        known = self.dispatcher.webhook_ids()
        added = [w.id for w in new.webhooks if w.id not in known]
        restored, restored_items = await self._take_up(new, known)
        self.file_config = new_file
        log.info(
            "reloaded", webhooks=len(new.webhooks), added=added,
            removed=sorted({w.id for w in old.webhooks} - {w.id for w in new.webhooks}),
            restored_deliveries=restored, restored_items=restored_items,
        )  # fmt: skip
        self.notifier.ready(self._status())
        return True

    def _webhook_checks(self) -> list[Check]:
        """The rules an API webhook must pass beyond its document, under the file in force."""
        file = self.file_config
        d = file.delivery
        return [
            address_check(d.deny_networks, d.allow_networks),
            lambda w: [{"path": p.path, "message": p.message} for p in trigger_problems(w, file.event_types)],
        ]

    async def _apply_api(self, api: Sequence[ApiWebhook]) -> None:
        """Put a new set of API webhooks in force, as a reload would (the caller holds the
        reload lock): new ones pick up any work an earlier webhook of their id left."""
        await self._take_up(compose(self.file_config, api), self.dispatcher.webhook_ids())

    # -- background tasks ----------------------------------------------------------------

    async def _poll_spool(self) -> None:
        while True:
            interval = self.config.batching.spool_poll_seconds
            await self.clock.sleep(interval)
            try:
                self.batcher.poll(ahead=interval)
                await self.dispatcher.poll_spool()
                self.dispatcher.trim_memory()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("spool_poll_failed")

    async def _prune(self) -> None:
        while True:
            try:
                cutoff = self.clock.now() - self.config.storage.retention_days * 86400
                configured = {w.id for w in self.config.webhooks}
                while await self.store.prune(cutoff, configured) >= 5000:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("prune_failed")
            await self.clock.sleep(PRUNE_EVERY)

    async def _watchdog(self) -> None:
        # Pinged from the loop itself, so a stuck loop misses its pings and is restarted.
        await watchdog_loop(self.notifier, status=self._status)

    # -- state for metrics and STATUS= ---------------------------------------------------

    def _status(self) -> str:
        queued = sum(self.dispatcher.queued().values())
        batched = sum(self.batcher.pending().values())
        return f"{queued} deliveries queued, {self.dispatcher.inflight} in flight, {batched} items in open batches"

    def _gauges(self) -> dict[str, dict[str, float]]:
        pending: dict[str, float] = {}
        for wid, n in self.dispatcher.queued().items():
            pending[wid] = pending.get(wid, 0) + n
        for wid, n in self.batcher.pending().items():
            pending[wid] = pending.get(wid, 0) + n
        batches: dict[str, float] = {}
        spool = 0
        for b in self.batcher.open.values():
            batches[b.webhook_id] = batches.get(b.webhook_id, 0) + 1
            if b.spooled:
                spool += b.count
        disabled = {
            w.id: float(not w.enabled or self.dispatcher.health(w.id).auto_disabled) for w in self.config.webhooks
        }
        return {
            "pending_items": pending,
            "open_batches": batches,
            "webhook_disabled": disabled,
            "spool": {"": spool},
            "inflight": {"": self.dispatcher.inflight},
        }
