# Kuvert's Synapse module: every file the homeserver is about to store (an upload, a thumbnail it
# made, remote media it fetched, a URL preview image) is streamed to Kuvert, which scans it with
# the same scanner and records it in the same audit log as everything else. The file is stored
# only when Kuvert answers "clean"; infected or unscannable, the upload is refused (Synapse
# answers 400 and deletes the file, so no member can ever download it). When Kuvert cannot answer
# (down, unreachable, its scanner down), the upload is refused too, unless fail_closed is false.
#
# It uses Synapse's module API, spam-checker callback check_media_file_for_spam (Synapse 1.37+;
# NOT_SPAM and error codes 1.61+, checked with 1.67). Load it in homeserver.yaml:
#
#   modules:
#     - module: kuvert_upload_scan.KuvertUploadScan
#       config:
#         kuvert_url: "http://kuvert-proxy:9993"          # Kuvert's application service listener
#         # the token: from this environment variable (the default), or kuvert_token_file, or kuvert_token
#         kuvert_token_env: KUVERT_UPLOAD_CHECK_TOKEN
#         fail_closed: true                          # refuse uploads while Kuvert cannot answer
#         timeout_seconds: 120
#
# with this file's directory on Synapse's PYTHONPATH (deploy/README.md, "Uploads in Element").
# The token is Kuvert's appservice.uploadCheckToken (KUVERT_UPLOAD_CHECK_TOKEN).
import http.client
import json
import logging
import os
import tempfile
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from synapse.module_api import ModuleApi
from synapse.module_api.errors import Codes, ConfigError

try:  # Synapse 1.61+
    from synapse.module_api import NOT_SPAM
except ImportError:  # pragma: no cover - older Synapse takes False for "not spam"
    NOT_SPAM = False  # type: ignore[assignment]

logger = logging.getLogger(__name__)

CHECK_PATH = "/_kuvert/v1/upload-check"


class KuvertUploadScanConfig:
    def __init__(self, url: str, token: str, fail_closed: bool, timeout_seconds: float) -> None:
        self.url = urllib.parse.urlsplit(url)
        self.token = token
        self.fail_closed = fail_closed
        self.timeout_seconds = timeout_seconds


class KuvertUploadScan:
    def __init__(self, config: KuvertUploadScanConfig, api: ModuleApi) -> None:
        self._config = config
        self._api = api
        api.register_spam_checker_callbacks(check_media_file_for_spam=self.check_media_file_for_spam)
        logger.info(
            "Kuvert upload check: every stored file goes to %s (fail_closed=%s)",
            urllib.parse.urlunsplit(config.url),
            config.fail_closed,
        )

    @staticmethod
    def parse_config(config: Dict[str, Any]) -> KuvertUploadScanConfig:
        url = config.get("kuvert_url")
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError("kuvert_url: the URL of Kuvert's application service listener, e.g. http://kuvert-proxy:9993")
        token = config.get("kuvert_token")
        token_file = config.get("kuvert_token_file")
        if token is None and isinstance(token_file, str):
            try:
                with open(token_file, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as e:
                raise ConfigError("kuvert_token_file: cannot read %s: %s" % (token_file, e))
        token_env = config.get("kuvert_token_env", "KUVERT_UPLOAD_CHECK_TOKEN")
        if token is None and isinstance(token_env, str):
            token = os.environ.get(token_env)
        if not isinstance(token, str) or len(token) < 32:
            raise ConfigError(
                "kuvert_token, kuvert_token_file or the variable kuvert_token_env names (KUVERT_UPLOAD_CHECK_TOKEN):"
                " Kuvert's appservice.uploadCheckToken, at least 32 characters"
            )
        fail_closed = config.get("fail_closed", True)
        if not isinstance(fail_closed, bool):
            raise ConfigError("fail_closed: true (refuse uploads while Kuvert cannot answer) or false")
        timeout = config.get("timeout_seconds", 120)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError("timeout_seconds: a positive number")
        return KuvertUploadScanConfig(url, token, fail_closed, float(timeout))

    async def check_media_file_for_spam(self, file_wrapper: Any, file_info: Any) -> Any:
        media = "%s/%s" % (file_info.server_name or "local", file_info.file_id)
        if getattr(file_info, "thumbnail", None) is not None:
            kind = "thumbnail"
        elif getattr(file_info, "url_cache", False):
            kind = "url-preview"
        elif file_info.server_name:
            kind = "remote"
        else:
            kind = "upload"
        path: Optional[str] = getattr(file_wrapper, "path", None)
        copy: Optional[str] = None
        try:
            if path is None:
                # A Synapse whose wrapper hides the path: copy the file through the documented reader.
                fd, copy = tempfile.mkstemp(prefix="kuvert-upload-")
                with os.fdopen(fd, "wb") as out:
                    await file_wrapper.write_chunks_to(out.write)
                path = copy
            status, answer = await self._api.defer_to_thread(self._post, path, media, kind)
        except Exception as e:
            logger.warning("Kuvert upload check of %s got no answer: %s", media, e)
            return self._unanswered(media)
        finally:
            if copy is not None:
                os.unlink(copy)

        if status == 200 and answer.get("verdict") == "clean":
            return NOT_SPAM
        if status == 200 and answer.get("verdict") in ("infected", "unscannable"):
            logger.info("Kuvert refused %s (%s): %s", media, answer.get("verdict"), answer.get("error"))
            return Codes.FORBIDDEN
        if status in (401, 403, 404):
            # Kuvert answered, but this module is not set up right: never let that open the door.
            logger.error("Kuvert upload check is misconfigured (HTTP %s): %s", status, answer.get("error"))
            return Codes.FORBIDDEN
        logger.warning("Kuvert could not check %s (HTTP %s): %s", media, status, answer.get("error"))
        return self._unanswered(media)

    def _unanswered(self, media: str) -> Any:
        if self._config.fail_closed:
            return Codes.FORBIDDEN
        logger.warning("fail_closed is false: %s is stored without Kuvert's check", media)
        return NOT_SPAM

    def _post(self, path: str, media: str, kind: str) -> Tuple[int, Dict[str, Any]]:
        """Streams the file to Kuvert (in a thread of Synapse's pool: blocking I/O is fine here)."""
        url = self._config.url
        connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = connection_class(url.hostname or "localhost", url.port, timeout=self._config.timeout_seconds)
        try:
            with open(path, "rb") as body:
                try:
                    conn.request(
                        "POST",
                        url.path.rstrip("/") + CHECK_PATH,
                        body=body,
                        headers={
                            "Authorization": "Bearer " + self._config.token,
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(os.fstat(body.fileno()).st_size),
                            "X-Kuvert-Media": media,
                            "X-Kuvert-Media-Kind": kind,
                        },
                        encode_chunked=False,
                    )
                except (BrokenPipeError, ConnectionResetError):
                    # Kuvert answered before taking the whole file (a refused token, a file over its limit): read its answer.
                    pass
                response = conn.getresponse()
                raw = response.read(65536)
            try:
                answer = json.loads(raw.decode("utf-8"))
            except ValueError:
                answer = {}
            return response.status, answer if isinstance(answer, dict) else {}
        finally:
            conn.close()

