"""A Hub-compatible HTTP server for tests: in-memory repos with history, on 127.0.0.1 only.

No package gives a writable local Hub (``hf-local-hub``'s wheel lacks its server binary, ``olah`` is a
read-only mirror), so the tests run
the real ``huggingface_hub`` client against this stdlib server. It implements the endpoints that
client uses for publishing and reading back (create repo, validate-yaml, preupload, commit, repo
info, tree, resolve, commits, paths-info, whoami), answers ``"uploadMode": "regular"`` so file
contents travel inline in the commit (no LFS, no xet), keeps every commit so older revisions still
serve their files, and offers hooks a test needs to reproduce what a real Hub does to a user:
bad tokens (401), read-only tokens (403), injected errors (409/412/5xx/...), a stale parent commit
(412), a barrier that makes two commits race, and network faults: a stalled answer (the request is
read, the answer never comes, until the server stops) and a dropped connection (closed with no answer).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = ["HubServer", "git_blob_sha1"]

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_sha1(content: bytes) -> str:
    """The git blob id of ``content`` (what the Hub reports as a file's ``oid`` and ``ETag``)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, bytes]
    title: str
    message: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: str
    refs: dict[str, str] = field(default_factory=dict)  # branch or refs/pr/N -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)
    prs: int = 0


@dataclass
class Injection:
    """One injected answer: the next ``times`` requests matching ``method``/``path_contains`` get it."""

    status: int
    method: str | None
    path_contains: str | None
    times: int
    error_code: str | None
    message: str
    #: ``"status"`` answers ``status``; ``"stall"`` never answers (until ``stop()``); ``"drop"`` hangs up.
    action: str = "status"


class _Drop(Exception):
    """Close the connection without an answer."""


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubServer:
    """The in-memory Hub. ``start()`` serves it on ``127.0.0.1:<free port>`` in a daemon thread.

    Test-facing knobs (all thread-safe):

    * ``tokens``: when not ``None``, the only accepted bearer tokens (others get 401);
      ``read_only_tokens`` may read but get 403 on writes.
    * :meth:`inject`: answer the next matching requests with an error status.
    * ``commit_barrier``: a :class:`threading.Barrier` every commit request waits on before it is
      applied (set it to make two publishers race on the same parent commit).
    * ``requests``: the log of ``(method, path)`` served; ``conflicts``: how many 412s were sent.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.tokens: set[str] | None = None
        self.read_only_tokens: set[str] = set()
        self.injections: list[Injection] = []
        self.commit_barrier: threading.Barrier | None = None
        self.requests: list[tuple[str, str]] = []
        self.auth_headers: list[str] = []
        self.conflicts = 0
        self._counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, client_address: None  # a client hanging up is no error
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="hubserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # releases stalled requests
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ test helpers
    def inject(
        self,
        status: int,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        error_code: str | None = None,
        message: str = "injected error",
        action: str = "status",
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``X-Error-Code``).

        ``action="stall"`` reads the request and never answers (until :meth:`stop`); ``action="drop"``
        closes the connection with no answer, as a proxy or a crashing server does.
        """
        assert action in ("status", "stall", "drop")
        with self.lock:
            self.injections.append(Injection(status, method, path_contains, times, error_code, message, action))

    def create_repo(self, repo_id: str, repo_type: str = "dataset", files: dict[str, bytes] | None = None) -> str:
        """Create a repo directly (as another user would have); returns its head commit."""
        with self.lock:
            repo = self._create(repo_type, repo_id, private=False)
            if files:
                self._apply(repo, "main", files, [], "seed files", "", None)
            return repo.refs["main"]

    def files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision."""
        with self.lock:
            repo = self._repo(repo_type, repo_id)
            return dict(repo.commits[self._resolve(repo, revision)].files)

    def history(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> list[Commit]:
        """Commits reachable from ``revision``, newest first."""
        with self.lock:
            repo = self._repo(repo_type, repo_id)
            out: list[Commit] = []
            oid: str | None = self._resolve(repo, revision)
            while oid is not None:
                commit = repo.commits[oid]
                out.append(commit)
                oid = commit.parent
            return out

    def refs(self, repo_id: str, repo_type: str = "dataset") -> dict[str, str]:
        with self.lock:
            return dict(self._repo(repo_type, repo_id).refs)

    # ------------------------------------------------------------------ model
    def _create(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        key = (repo_type, repo_id)
        if key in self.repos:
            raise _HttpError(409, "You already created this repo", extra={"url": self._repo_url(repo_type, repo_id)})
        repo = Repo(repo_type, repo_id, private, _now())
        self.repos[key] = repo
        # Like the real Hub: a new repo starts with one commit holding .gitattributes.
        self._apply(repo, "main", {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"}, [],
                    "initial commit", "", None)
        return repo

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise _HttpError(404, "Repository not found", "RepoNotFound")
        return repo

    def _resolve(self, repo: Repo, revision: str) -> str:
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        matches = [oid for oid in repo.commits if len(revision) >= 7 and oid.startswith(revision)]
        if len(matches) == 1:
            return matches[0]
        raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _apply(
        self,
        repo: Repo,
        ref: str,
        added: dict[str, bytes],
        deleted: list[str],
        title: str,
        message: str,
        parent: str | None,
    ) -> str:
        parent = parent if parent is not None else repo.refs.get(ref)
        files = dict(repo.commits[parent].files) if parent else {}
        for path in deleted:
            if path.endswith("/"):
                files = {p: b for p, b in files.items() if not p.startswith(path)}
            else:
                files.pop(path, None)
        files.update(added)
        seed = f"{repo.repo_id}|{parent}|{next(self._counter)}|{time.time_ns()}".encode()
        oid = hashlib.sha1(seed).hexdigest()
        repo.commits[oid] = Commit(oid, parent, files, title, message, _now())
        repo.refs[ref] = oid
        return oid

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.url}/{_PREFIX[repo_type]}{repo_id}"

    # ------------------------------------------------------------------ request entry
    def handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path, query = split.path, parse_qs(split.query)
        h.body = h.read_raw_body()  # always drain it, so an early error keeps the connection usable
        with self.lock:
            self.requests.append((h.command, path))
        try:
            self._check_injection(h.command, path)
            self._check_auth(h)
            self._route(h, path, query)
        except _Drop:
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        except _HttpError as exc:
            body = {"error": exc.message, **exc.extra}
            headers = {"X-Error-Message": exc.message}
            if exc.code:
                headers["X-Error-Code"] = exc.code
            if exc.code == "EntryNotFound" and "commit" in exc.extra:
                headers["X-Repo-Commit"] = exc.extra["commit"]
            h.send_json(body, exc.status, headers)

    def _check_injection(self, method: str, path: str) -> None:
        with self.lock:
            for inj in self.injections:
                if inj.times <= 0:
                    continue
                if inj.method is not None and inj.method != method:
                    continue
                if inj.path_contains is not None and inj.path_contains not in path:
                    continue
                inj.times -= 1
                if inj.action == "drop":
                    raise _Drop
                if inj.action == "stall":
                    break
                if inj.status in (409, 412):
                    self.conflicts += 1
                raise _HttpError(inj.status, inj.message, inj.error_code)
            else:
                return
        self._stopped.wait()  # a stall: no answer until the server stops
        raise _Drop

    def _check_auth(self, h: _Handler) -> None:
        auth = h.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with self.lock:
            self.auth_headers.append(auth)
        write = h.command in ("POST", "PUT", "DELETE") and "/paths-info/" not in h.path and "validate-yaml" not in h.path
        if token in self.read_only_tokens:
            if write:
                raise _HttpError(403, "You don't have the rights to write to this repo (read-only token)")
            return
        if self.tokens is not None and token not in self.tokens:
            raise _HttpError(401, "Invalid credentials in Authorization header")

    def _route(self, h: _Handler, path: str, query: dict[str, list[str]]) -> None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        m = h.command
        if parts[:2] == ["api", "repos"] and m == "POST" and parts[2:] == ["create"]:
            return self._api_create(h)
        if parts[:2] == ["api", "validate-yaml"] and m == "POST":
            return self._api_validate_yaml(h)
        if parts[:2] == ["api", "whoami-v2"]:  # the Hub's answer for a classic token: its role
            header = h.headers.get("Authorization", "")
            role = "read" if header.removeprefix("Bearer ") in self.read_only_tokens else "write"
            return h.send_json({"name": "tester", "type": "user",
                                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": role}}})
        if len(parts) >= 4 and parts[0] == "api" and parts[1] in _TYPES:
            repo_type, repo_id, rest = _TYPES[parts[1]], f"{parts[2]}/{parts[3]}", parts[4:]
            with self.lock:
                repo = self._repo(repo_type, repo_id)
            return self._api_repo(h, m, repo, rest, query)
        # /{prefix}{ns}/{name}/resolve/{rev}/{path}
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = _TYPES[parts[0]], parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve" and m in ("GET", "HEAD"):
            with self.lock:
                repo = self._repo(repo_type, f"{parts[0]}/{parts[1]}")
            return self._resolve_file(h, repo, parts[3], "/".join(parts[4:]))
        raise _HttpError(404, f"no route for {m} {path}")

    # ------------------------------------------------------------------ endpoints
    def _api_create(self, h: _Handler) -> None:
        body = h.read_json()
        name, org = body["name"], body.get("organization")
        repo_id = f"{org}/{name}" if org else f"tester/{name}"
        repo_type = body.get("type") or "model"
        private = body.get("private") or body.get("visibility") == "private"
        with self.lock:
            self._create(repo_type, repo_id, bool(private))
        h.send_json({"url": self._repo_url(repo_type, repo_id)})

    def _api_validate_yaml(self, h: _Handler) -> None:
        content = h.read_json().get("content", "")
        if content.startswith("---"):
            try:
                yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as exc:
                return h.send_json({"errors": [{"message": f"invalid YAML: {exc}"}]}, 400)
        h.send_json({"errors": [], "warnings": []})

    def _api_repo(self, h: _Handler, m: str, repo: Repo, rest: list[str], query: dict[str, list[str]]) -> None:
        if not rest and m == "GET":
            return self._repo_info(h, repo, "main")
        action, args = rest[0], rest[1:]
        if action == "revision" and m == "GET" and args:
            return self._repo_info(h, repo, "/".join(args))
        if action == "preupload" and m == "POST":
            return self._preupload(h, repo, args[0] if args else "main")
        if action == "commit" and m == "POST":
            return self._commit(h, repo, args[0] if args else "main", query)
        if action == "tree" and m == "GET":
            return self._tree(h, repo, args[0], "/".join(args[1:]), query)
        if action == "commits" and m == "GET":
            return self._commits(h, repo, args[0] if args else "main")
        if action == "paths-info" and m == "POST":
            return self._paths_info(h, repo, args[0])
        if action == "refs" and m == "GET":
            with self.lock:
                branches = [{"name": r, "ref": f"refs/heads/{r}", "targetCommit": o}
                            for r, o in repo.refs.items() if not r.startswith("refs/")]
                prs = [{"name": r, "ref": r, "targetCommit": o} for r, o in repo.refs.items() if r.startswith("refs/pr/")]
            return h.send_json({"branches": branches, "converts": [], "tags": [], "pullRequests": prs})
        raise _HttpError(404, f"no route for {m} {action}")

    def _repo_info(self, h: _Handler, repo: Repo, revision: str) -> None:
        with self.lock:
            oid = self._resolve(repo, revision)
            commit = repo.commits[oid]
            files = commit.files
        body: dict[str, Any] = {
            "id": repo.repo_id,
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "author": repo.repo_id.split("/")[0],
            "sha": oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": repo.created,
            "lastModified": commit.date,
            "siblings": [{"rfilename": p} for p in sorted(files)],
        }
        readme = files.get("README.md")
        if readme is not None and readme.startswith(b"---"):
            try:
                body["cardData"] = yaml.safe_load(readme.decode().split("---", 2)[1]) or {}
            except yaml.YAMLError:
                pass
        h.send_json(body)

    def _preupload(self, h: _Handler, repo: Repo, revision: str) -> None:
        payload = h.read_json()
        with self.lock:
            try:
                current = repo.commits[self._resolve(repo, revision)].files
            except _HttpError:
                current = {}
        out = []
        for f in payload.get("files", []):
            existing = current.get(f["path"])
            out.append({
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha1(existing) if existing is not None else None,
            })
        h.send_json({"files": out})

    def _commit(self, h: _Handler, repo: Repo, revision: str, query: dict[str, list[str]]) -> None:
        lines = [json.loads(line) for line in h.read_body().decode().splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                content = value["content"]
                added[value["path"]] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            elif key == "deletedFile":
                deleted.append(value["path"])
            elif key == "deletedFolder":
                deleted.append(value["path"].rstrip("/") + "/")
            elif key == "lfsFile":
                raise _HttpError(400, "this test server accepts regular uploads only")
        barrier = self.commit_barrier
        if barrier is not None:  # a race: hold this commit until the other party's arrives too
            try:
                barrier.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass
            with self.lock:
                if self.commit_barrier is barrier:
                    self.commit_barrier = None  # one race only; retries go straight through
        create_pr = query.get("create_pr", ["0"])[0] in ("1", "true")
        parent = header.get("parentCommit")
        with self.lock:
            if create_pr:
                base = parent or repo.refs[revision if revision in repo.refs else "main"]
                if base not in repo.commits:
                    raise _HttpError(404, f"Invalid parent commit {base}", "RevisionNotFound")
                repo.prs += 1
                ref = f"refs/pr/{repo.prs}"
                oid = self._apply(repo, ref, added, deleted, header.get("summary", ""), header.get("description", ""), base)
                pr_url = f"{self._repo_url(repo.repo_type, repo.repo_id)}/discussions/{repo.prs}"
            else:
                head = self._resolve(repo, revision)
                if parent is not None and parent != head:
                    self.conflicts += 1
                    raise _HttpError(412, "A commit has happened since. Please refresh and try again.")
                ref = revision if revision in repo.refs else "main"
                oid = self._apply(repo, ref, added, deleted, header.get("summary", ""), header.get("description", ""), head)
                pr_url = None
        h.send_json({
            "commitOid": oid,
            "commitUrl": f"{self._repo_url(repo.repo_type, repo.repo_id)}/commit/{oid}",
            "pullRequestUrl": pr_url,
        })

    def _entries(self, files: dict[str, bytes], folder: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{folder}/" if folder else ""
        if folder and not any(p.startswith(prefix) for p in files):
            raise _HttpError(404, f"{folder} does not exist", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix):].split("/")
            for depth in range(1, len(rel)):
                d = prefix + "/".join(rel[:depth])
                if recursive or depth == 1:
                    entries.setdefault(d, {"type": "directory", "oid": git_blob_sha1(d.encode()), "path": d})
            if recursive or len(rel) == 1:
                entries[path] = {"type": "file", "oid": git_blob_sha1(files[path]), "size": len(files[path]),
                                 "path": path}
        return list(entries.values())

    def _tree(self, h: _Handler, repo: Repo, revision: str, folder: str, query: dict[str, list[str]]) -> None:
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        with self.lock:
            files = repo.commits[self._resolve(repo, revision)].files
        h.send_json(self._entries(files, folder.strip("/"), recursive))

    def _paths_info(self, h: _Handler, repo: Repo, revision: str) -> None:
        form = parse_qs(h.read_body().decode())
        wanted = form.get("paths", [])
        with self.lock:
            files = repo.commits[self._resolve(repo, revision)].files
        out: list[dict[str, Any]] = []
        for p in wanted:
            p = p.strip("/")
            if p in files:
                out.append({"type": "file", "oid": git_blob_sha1(files[p]), "size": len(files[p]), "path": p})
            elif any(f.startswith(p + "/") for f in files):
                out.append({"type": "directory", "oid": git_blob_sha1(p.encode()), "path": p})
        h.send_json(out)

    def _commits(self, h: _Handler, repo: Repo, revision: str) -> None:
        out = [
            {"id": c.oid, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": "tester"}]}
            for c in self.history(repo.repo_id, repo.repo_type, revision)
        ]
        h.send_json(out)

    def _resolve_file(self, h: _Handler, repo: Repo, revision: str, path: str) -> None:
        with self.lock:
            oid = self._resolve(repo, revision)
            content = repo.commits[oid].files.get(path)
        if content is None:
            raise _HttpError(404, f"{path} does not exist at {revision}", "EntryNotFound", {"commit": oid})
        headers = {"X-Repo-Commit": oid, "ETag": f'"{git_blob_sha1(content)}"', "Accept-Ranges": "bytes"}
        status, body = 200, content
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start_s, _, end_s = rng[len("bytes="):].partition("-")
            start = int(start_s or 0)
            end = int(end_s) if end_s else len(content) - 1
            body = content[start:end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(content)}"
        h.send_bytes(body, status, headers)


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self) -> None:
        self.hub.handle(self)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    body: bytes = b""

    def read_body(self) -> bytes:
        return self.body

    def read_raw_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def read_json(self) -> Any:
        body = self.read_body()
        return json.loads(body) if body else {}

    def send_json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(json.dumps(data).encode(), status, {"Content-Type": "application/json", **(headers or {})})

    def send_bytes(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has headers only, or the connection desyncs
            self.wfile.write(body)

