"""Secret redaction for anything that is persisted or logged (the audit store above all).

`redact(value)` walks strings, dicts, lists and tuples and returns a copy in which credentials are
replaced by "[REDACTED]": values under secret-looking keys (api_key, Authorization, token,
password...), Authorization/Bearer headers, provider key formats (OpenAI/Anthropic `sk-`, GitHub,
AWS, Slack, Google, Hugging Face, GitLab, JWTs, PEM private keys), `name = "literal"` assignments
to secret-named variables, passwords in URLs, the values of this process's secret-named environment
variables, and long high-entropy strings that look like keys. Ordinary code and prose pass through
unchanged: the heuristics are tuned against real source trees, not just against examples of keys.

Provider formats also come from `detect-secrets`' maintained detectors (AWS, Slack tokens and
webhooks, Stripe, GitHub, GitLab, SendGrid, Twilio, ...; see `_DETECTORS`). The package takes a
quarter of a second to import, so it loads on a thread when this module is imported and the first
redaction waits for it only if it is still loading.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"

# Normalised (lower case, alphanumerics only) key names whose value is always a secret.
_SECRET_KEYS = frozenset(
    {
        "apikey",
        "xapikey",
        "authorization",
        "proxyauthorization",
        "auth",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "privatekey",
        "cookie",
        "setcookie",
        "credentials",
        "credential",
        "accesskey",
        "secretkey",
        "clientsecret",
        "sessionid",
    }
)
# ...and names that end like these ("openai_api_key", "github_token", "db_password").
_SECRET_SUFFIXES = ("apikey", "token", "secret", "password", "passwd", "accesskey", "privatekey")
# Names that end like a secret but hold counts or settings, never credentials.
_NOT_SECRET_KEYS = frozenset({"maxtoken", "numtoken", "eostoken", "bostoken", "padtoken"})


@lru_cache(maxsize=1024)
def is_secret_key(key: str) -> bool:
    """True for a dict key or variable name whose value should never be stored."""
    norm = re.sub(r"[^a-z0-9]", "", key.lower())
    if not norm or norm in _NOT_SECRET_KEYS:
        return False
    return norm in _SECRET_KEYS or norm.endswith(_SECRET_SUFFIXES)


# Provider key formats: the whole match is the secret.
_PROVIDER_RE = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-api03-), Stripe (sk_live_, rk_test_).
            r"\b(?:sk|rk)[-_][A-Za-z0-9_\-]{20,}",
            # GitHub personal/OAuth/app tokens and fine-grained PATs.
            r"\bgh[pousr]_[A-Za-z0-9]{30,}",
            r"\bgithub_pat_[A-Za-z0-9_]{30,}",
            # AWS access key ids.
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
            # Slack, Google API keys, Hugging Face, GitLab.
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
            r"\bAIza[0-9A-Za-z_\-]{35}",
            r"\bhf_[A-Za-z0-9]{30,}",
            r"\bglpat-[A-Za-z0-9_\-]{20,}",
            # JSON Web Tokens.
            r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
            # PEM private keys, the whole block (or up to the end when it was cut off).
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?=[\s\S]{0,200}?[A-Za-z0-9+/]{40})"
            r"[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        )
    )
)

# Where a provider key could start; the full patterns above only run on text that has one, since
# an alternation of \b-anchored patterns is slow to scan and most text holds no key at all.
_PROVIDER_ANCHOR_RE = re.compile(
    r"(?<![A-Za-z0-9_])(?:sk[-_]|rk[-_]|gh[pousr]_|github_pat_|"
    r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)|xox[abposr]-|AIza|hf_|glpat-|eyJ)|-----BEGIN"
)

# "Authorization: Bearer abc", "x-api-key=abc": keep the header name and scheme, drop the rest.
# (Patterns here start with a literal, which the regex engine scans for quickly.)
_HEADER_RE = re.compile(
    r"(?P<name>authorization[ \t]*[:=][ \t]*|x-api-key[ \t]*[:=][ \t]*)"
    r"(?:(?P<scheme>(?:bearer|basic|token|digest)[ \t]+)(?P<cred>[^\s\"',;}]+)"
    # Without a scheme the value must look like a credential, not `authorization: str`.
    r"|(?P<bare>(?=[^\s\"',;}]*\d)[^\s\"',;}]{12,}))"
    r"|(?P<bearer>bearer[ \t]+)(?P<btoken>[A-Za-z0-9\-._~+/]{16,}=*)",
    re.IGNORECASE,
)

# `OPENAI_API_KEY=abc123...`, `password = "hunter22"`, `"token": "abc..."`: a secret-named variable
# assigned a literal on the same line. The name's prefix ("OPENAI_") is left out of the match.
_ASSIGN_RE = re.compile(
    r"(?P<name>(?:api[_-]?key|token|secret|password|passwd|pwd|access[_-]?key|private[_-]?key)"
    r"\b[\"']?[ \t]*[:=][ \t]*)"
    r"(?:(?P<q>[\"'])(?P<quoted>[A-Za-z0-9_\-+/=.~!@#$%^&*]{8,})(?P=q)"
    # Unquoted: a run with a digit, not followed by a call, index or attribute (that is code).
    r"|(?P<bare>(?=[A-Za-z0-9_\-+/=.~]*\d)[A-Za-z0-9_\-+/=.~]{8,}+)(?![(\[]))",
    re.IGNORECASE,
)

# user:password@ in URLs.
_URL_CRED_RE = re.compile(r"(?P<name>://[^\s:/@]+:)(?P<cred>[^\s@/]+)(?=@)")

# Candidates for the entropy check: long runs of base64/base64url/hex characters.
_CANDIDATE_RE = re.compile(r"[A-Za-z0-9+/_\-]{32,}={0,2}")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
# Humps of an identifier: "NFCISO15693CustomCommand" -> NFCISO, 15693, Custom, Command.
_HUMP_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z][a-z]+|[a-z]+|\d+")
_DOTTED_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_DIGEST_CONTEXT_RE = re.compile(r"sha|md5|hash|digest|commit|checksum|integrity|rev", re.IGNORECASE)

_MIN_ENV_SECRET_LEN = 8


def _entropy(s: str) -> float:
    counts = Counter(s)
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_like_key(token: str, before: str) -> bool:
    body = token.rstrip("=")
    if body.isdigit():
        return False
    if _HEX_RE.fullmatch(body):
        # 32 hex (uuids: our own run and event ids) and 40 (git SHAs) are everywhere and harmless,
        # as are digests named as such; other long hex runs are usually secrets.
        letters = sum(c.isalpha() for c in body)
        return (
            len(body) >= 48 and letters >= len(body) // 8 and not _DIGEST_CONTEXT_RE.search(before)
        )
    if "/" in body:
        parts = [p for p in body.split("/") if p]
        if sum(1 for p in parts if re.fullmatch(r"[a-z_.\-]{2,}", p)) >= 2:
            return any(len(p) >= 32 and _looks_like_key(p, before) for p in parts)  # a path
    if not (any(c.isupper() for c in body) and any(c.islower() for c in body)):
        return False
    if sum(c.isdigit() for c in body) < 2:
        return False
    # Random base64 splits into humps of ~2 characters; identifiers and words into longer ones.
    if _mean_hump(body) >= 3.0:
        return False
    return _entropy(body) >= 4.0


def _mean_hump(text: str) -> float:
    humps = _HUMP_RE.findall(text)
    return sum(map(len, humps)) / len(humps) if humps else 0.0


def _code_like(value: str) -> bool:
    """`module.attr`, `PrivateKeyTypes`, `challengePassword`: a name in code, not a credential."""
    if _DOTTED_RE.fullmatch(value):
        return True
    return (
        value.isidentifier()
        and re.search(r"[a-z0-9][A-Z]", value) is not None
        and _mean_hump(value) >= 3.0
    )


@lru_cache(maxsize=1)
def _env_secret_values() -> tuple[str, ...]:
    values = {
        v
        for k, v in os.environ.items()
        if is_secret_key(k) and len(v) >= _MIN_ENV_SECRET_LEN and not v.isdigit()
    }
    return tuple(sorted(values, key=len, reverse=True))


def refresh_env_secrets() -> None:
    """Re-read the environment (after a secret variable was set in this process)."""
    _env_secret_values.cache_clear()
    _redact_short.cache_clear()


def _sub_provider(m: re.Match[str]) -> str:
    text = m.group(0)
    if text[:3] in ("sk-", "sk_", "rk-", "rk_"):
        # Keys are long random runs (`sk-proj-` adds a short prefix); SSH key types such as
        # `sk-ecdsa-sha2-nistp256-cert-v01` are short words joined by dashes.
        parts = re.split(r"[-_]", text[3:])
        if all(len(p) <= 10 for p in parts) and len(parts) > 2:
            return text
    return REDACTED


def _sub_header(m: re.Match[str]) -> str:
    if m.group("bearer") is not None:
        return m.group("bearer") + REDACTED
    if m.group("scheme") is not None:
        if m.group("cred").startswith(REDACTED):
            return m.group(0)
        return m.group("name") + m.group("scheme") + REDACTED
    return m.group("name") + REDACTED


def _sub_assign(m: re.Match[str]) -> str:
    quoted = m.group("quoted")
    if quoted is not None:
        # A quoted dotted name ("settings.key") is code; with a digit in it, a password.
        if REDACTED in quoted or (_code_like(quoted) and not any(c.isdigit() for c in quoted)):
            return m.group(0)
        return f"{m.group('name')}{m.group('q')}{REDACTED}{m.group('q')}"
    bare = m.group("bare")
    if REDACTED in bare or _code_like(bare):
        return m.group(0)
    return m.group("name") + REDACTED


def _sub_candidate(m: re.Match[str]) -> str:
    before = m.string[max(0, m.start() - 24) : m.start()]
    return REDACTED if _looks_like_key(m.group(0), before) else m.group(0)


# detect-secrets detectors whose regexes find a secret by its own format. Those that find one by
# the variable it is assigned to (Keyword, Cloudant, IBM, Softlayer) are covered by _ASSIGN_RE;
# JwtTokenDetector's pattern stops before the signature, so the JWT rule above stays.
_DETECTORS = {
    "aws": ("AWSKeyDetector",),
    "artifactory": ("ArtifactoryDetector",),
    "azure_storage_key": ("AzureStorageKeyDetector",),
    "basic_auth": ("BasicAuthDetector",),
    "discord": ("DiscordBotTokenDetector",),
    "github_token": ("GitHubTokenDetector",),
    "gitlab_token": ("GitLabTokenDetector",),
    "mailchimp": ("MailchimpDetector",),
    "npm": ("NpmDetector",),
    "openai": ("OpenAIDetector",),
    "pypi_token": ("PypiTokenDetector",),
    "sendgrid": ("SendGridDetector",),
    "slack": ("SlackDetector",),
    "square_oauth": ("SquareOAuthDetector",),
    "stripe": ("StripeDetector",),
    "telegram_token": ("TelegramBotTokenDetector",),
    "twilio": ("TwilioKeyDetector",),
}
# Detectors whose first group is the secret (the rest of the match is context: "aws_key = '...'",
# "://user:...@"); elsewhere the whole match is.
_GROUP_IS_SECRET = frozenset({"AWSKeyDetector", "BasicAuthDetector", "NpmDetector"})
_EDGE = " \t\r\n\"'=:"


class _DetectorRules:
    """The detectors' compiled regexes, loaded once on a thread (see the module docstring)."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._rules: list[tuple[re.Pattern[str], int]] = []
        self._screen: Any = None
        threading.Thread(target=self._load, name="agentls-redact-rules", daemon=True).start()

    def _load(self) -> None:
        try:
            for module_name, classes in _DETECTORS.items():
                module = importlib.import_module(f"detect_secrets.plugins.{module_name}")
                for class_name in classes:
                    for regex in getattr(module, class_name).denylist:
                        group = 1 if class_name in _GROUP_IS_SECRET and regex.groups else 0
                        self._rules.append((regex, group))
            self._screen = _screen([r for r, _ in self._rules])
        finally:
            self._ready.set()

    def rules(self) -> list[tuple[re.Pattern[str], int]]:
        self._ready.wait()
        return self._rules

    def may_match(self, text: str) -> bool:
        """False when no rule here can match: one linear RE2 pass instead of one per rule."""
        self._ready.wait()
        return self._screen is None or self._screen.search(text) is not None


def _screen(regexes: list[re.Pattern[str]]) -> Any:
    """One RE2 program matching a superset of the rules (lookarounds dropped, repeats capped)."""
    import re2

    loose = []
    for regex in (*regexes, _AWS_SECRET_RE, _CURL_USER_RE):
        pattern = re.sub(r"\{(\d+),(\d{4,})\}", r"{\1,}", regex.pattern)
        pattern = re.sub(r"\(\?<?[!=][^()]*\)", "", pattern)
        loose.append(f"(?i:{pattern})" if regex.flags & re.IGNORECASE else pattern)
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile("|".join(f"(?:{p})" for p in loose), options)
    except re2.error:
        return None  # then every rule runs: slower, never less safe


# A 40-character AWS secret access key: base64 characters, not part of a longer run.
_AWS_SECRET_RE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_KEY_ID_RE = re.compile(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}")
# `curl -u user:password`, `--user=user:password`: keep the user, drop the password.
_CURL_USER_RE = re.compile(
    r"(?P<name>(?:^|\s)(?:-u|--user)(?:[ \t]+|=)(?P<q>[\"']?)[^\s:\"']+:)(?P<cred>[^\s\"']+)"
)


def _detector_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for regex, group in _detector_rules.rules():
        for m in regex.finditer(text):
            start, end = m.span(group)
            if start < 0:
                continue
            while start < end and text[start] in _EDGE:
                start += 1
            while end > start and text[end - 1] in _EDGE:
                end -= 1
            if end - start >= 6 and REDACTED not in text[start:end]:
                spans.append((start, end))
    return spans


def _looks_like_aws_secret(token: str) -> bool:
    """A random 40-character base64 string (an AWS secret key), not an identifier, path or digest.

    Tuned on a million random keys (none missed) and the installed packages' sources: random
    base64 splits into 11 or more humps with few vowels; a 40-character identifier into words.
    """
    if _HEX_RE.fullmatch(token):
        return False
    if not (any(c.isupper() for c in token) and any(c.islower() for c in token)):
        return False
    parts = [p for p in token.split("/") if p]
    if len(parts) >= 3 and all(p.isdigit() or _is_word(p) for p in parts):
        return False  # a path: src/MainWindow/layout
    humps = len(_HUMP_RE.findall(re.sub(r"[/+]", " ", token)))
    vowels = _vowel_ratio(token)
    return not ((humps <= 8 and vowels >= 0.25) or (humps <= 10 and vowels >= 0.3))


_WORD_RE = re.compile(r"[A-Za-z][a-z]+(?:[A-Z][a-z]+)*")
_VOWELS = frozenset("aeiouAEIOU")


def _is_word(part: str) -> bool:
    return _WORD_RE.fullmatch(part) is not None and any(c in _VOWELS for c in part)


def _vowel_ratio(token: str) -> float:
    letters = [c for c in token if c.isalpha()]
    return sum(c in _VOWELS for c in letters) / max(1, len(letters))


def _aws_secret_spans(text: str, beside_key_id: bool) -> list[tuple[int, int]]:
    """40-character secrets: any beside an AWS key id, else those shaped like random keys."""
    return [
        m.span()
        for m in _AWS_SECRET_RE.finditer(text)
        if beside_key_id or _looks_like_aws_secret(m.group(0))
    ]


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    out = []
    last = 0
    for start, end in sorted(spans):
        if end <= last:
            continue
        start = max(start, last)
        out.append(text[last:start])
        out.append(REDACTED)
        last = end
    out.append(text[last:])
    return "".join(out)


def redact_text(text: str) -> str:
    """Redact secrets inside one string."""
    if len(text) < 8:
        return text
    for value in _env_secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    beside_key_id = _AWS_KEY_ID_RE.search(text) is not None
    if _PROVIDER_ANCHOR_RE.search(text):
        text = _PROVIDER_RE.sub(_sub_provider, text)
    if _detector_rules.may_match(text):
        spans = _detector_spans(text) + _aws_secret_spans(text, beside_key_id)
        text = _replace_spans(text, spans)
    text = _HEADER_RE.sub(_sub_header, text)
    text = _ASSIGN_RE.sub(_sub_assign, text)
    text = _URL_CRED_RE.sub(lambda m: m.group("name") + REDACTED, text)
    text = _CURL_USER_RE.sub(lambda m: m.group("name") + REDACTED, text)
    return _CANDIDATE_RE.sub(_sub_candidate, text)


# Short strings recur in every event of a run (goal, model, tool names, paths): redact each once.
_SHORT = 256


@lru_cache(maxsize=2048)
def _redact_short(text: str) -> str:
    return redact_text(text)


def redact(value: Any) -> Any:
    """Return `value` with secrets replaced by "[REDACTED]" (containers are copied, not mutated)."""
    if isinstance(value, str):
        return _redact_short(value) if len(value) <= _SHORT else redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED if isinstance(k, str) and v is not None and is_secret_key(k) else redact(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        # A header pair such as ("Authorization", "Bearer ...").
        if (
            len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], str)
            and is_secret_key(value[0])
        ):
            items: list[Any] = [value[0], REDACTED]
        else:
            items = [redact(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


# Last, so the loading thread finds every rule of this module defined.
_detector_rules = _DetectorRules()
