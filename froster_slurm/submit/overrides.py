"""Site overrides of templates and jobscripts that survive upgrades.

An admin exports only the files they change (``templates export DIR NAME...``); each exported
file carries a stamp line naming the froster-slurm version and a digest of the built-in text
it was copied from.  With that stamp:

- a file that was exported but never edited (its body still hashes to the stamp) does not
  shadow anything: the built-in of the installed version is used, so upgrades reach the site;
- an edited file whose built-in has changed since the export is *stale*: every submit says so
  on stderr with the ``templates diff NAME`` command to run; a file without a stamp (written by
  hand, or exported before stamps existed) is reported the same way.

Every stage renders from the one skeleton ``templates/stage.sbatch`` unless the package ships a
``templates/<stage>.sbatch`` of its own (none needs one today).  The per-stage names stay:
``archive.sbatch`` is listed, shown, exported and diffed like a file, and its built-in text is
the skeleton's.  A site overrides one stage with ``<stage>.sbatch`` or every stage that uses the
skeleton with ``stage.sbatch``; the stage's own name wins, and an unedited copy of either is
passed over as above.  A ``<stage>.sbatch`` exported before the skeleton existed keeps working
(it is reported as stale: its built-in has changed).
"""

from __future__ import annotations

import difflib
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config.keys import STAGES
from ..errors import NotFoundError, UserError
from .render import builtin_files

STAMP_PREFIX = "froster-slurm-override:"
_STAMP = re.compile(r"^(?:# |<!-- )" + re.escape(STAMP_PREFIX) + r" (\S+) from froster-slurm "
                    r"(\S+) \(built-in sha256 ([0-9a-f]{16})\)(?: -->)?$")
KINDS = {"templates": "template", "jobscripts": "jobscript"}
SKELETON = "stage.sbatch"


@dataclass(frozen=True)
class Stamp:
    name: str
    version: str
    digest: str


@dataclass(frozen=True)
class Resolved:
    """Which text a name renders from, and what an admin should know about its override."""

    name: str
    kind: str  # "template" or "jobscript"
    origin: str  # "built-in" or "site"
    text: str
    builtin_text: str
    builtin_path: str
    site_path: Path | None = None
    stamp: Stamp | None = None
    note: str = ""  # "", "unedited copy", "stale", "no version stamp"

    @property
    def stale(self) -> bool:
        return self.note in ("stale", "no version stamp")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def builtin_names() -> dict[str, tuple[str, str, str]]:
    """name -> (kind, built-in text, where it is) for every template and jobscript.

    Each stage's ``<stage>.sbatch`` is here too: the skeleton's text and path when the package
    has no file of that name.
    """
    names = {name: (kind, f.read_text(), str(f)) for folder, kind in KINDS.items()
             for name, f in builtin_files(folder).items()}
    for stage in STAGES:
        names.setdefault(f"{stage}.sbatch", names[SKELETON])
    return names


def uses_skeleton(name: str) -> bool:
    """True when stage template ``name`` has no built-in file of its own."""
    return (name != SKELETON and name.removesuffix(".sbatch") in STAGES
            and name not in builtin_files("templates"))


def stamp_line(name: str, builtin_text: str) -> str:
    body = f"{STAMP_PREFIX} {name} from froster-slurm {__version__} " \
           f"(built-in sha256 {digest(builtin_text)})"
    return f"<!-- {body} -->" if name.endswith(".html") else f"# {body}"


def _stamp_at(name: str, lines: list[str]) -> int:
    """Where the stamp goes: after a shebang or doctype, else first."""
    first = lines[0] if lines else ""
    return 1 if first.startswith("#!") or first.lower().startswith("<!doctype") else 0


def add_stamp(name: str, text: str) -> str:
    lines = text.split("\n")
    lines.insert(_stamp_at(name, lines), stamp_line(name, text))
    return "\n".join(lines)


def split_stamp(text: str) -> tuple[Stamp | None, str]:
    """(stamp, text without the stamp line); (None, text) when there is none."""
    lines = text.split("\n")
    for i in range(min(3, len(lines))):
        m = _STAMP.match(lines[i])
        if m:
            return Stamp(*m.groups()), "\n".join(lines[:i] + lines[i + 1:])
    return None, text


def resolve(name: str, templates_dir: str | Path | None = None, kind: str | None = None
            ) -> Resolved:
    """The file ``name`` renders from: an edited site override, else the built-in.

    For a stage that uses the skeleton the site files tried are ``<stage>.sbatch``, then
    ``stage.sbatch``; the first edited one wins.
    """
    names = builtin_names()
    if name not in names or (kind and names[name][0] != kind):
        what = kind or "template or jobscript"
        choices = sorted(n for n, (k, _, _) in names.items() if not kind or k == kind)
        raise NotFoundError(f"no {what} named {name!r}; known: {', '.join(choices)}")
    file_kind, builtin, where = names[name]
    candidates = [name, SKELETON] if uses_skeleton(name) else [name]
    unedited: Resolved | None = None
    for candidate in candidates if templates_dir else []:
        site = Path(templates_dir).expanduser() / candidate
        if not site.is_file():
            continue
        text = site.read_text()
        stamp, body = split_stamp(text)
        if stamp and digest(body) == stamp.digest:
            unedited = unedited or Resolved(name, file_kind, "built-in", builtin, builtin, where,
                                            site, stamp, "unedited copy")
            continue
        if stamp is None:
            note = "no version stamp"
        elif stamp.digest != digest(builtin):
            note = "stale"
        else:
            note = ""
        return Resolved(name, file_kind, "site", text, builtin, where, site, stamp, note)
    return unedited or Resolved(name, file_kind, "built-in", builtin, builtin, where)


def every(templates_dir: str | Path | None) -> list[Resolved]:
    return [resolve(name, templates_dir) for name in sorted(builtin_names())]


def stale_message(r: Resolved) -> str:
    how = f"compare: froster-slurm templates diff {r.name}"
    if r.stamp is None:
        return (f"site {r.kind} {r.site_path} has no version stamp (written by hand or exported "
                f"before froster-slurm {__version__}); {how}, then re-export it with `templates "
                f"export DIR {r.name}` and re-apply your change")
    return (f"site {r.kind} {r.site_path} was written for froster-slurm {r.stamp.version} and "
            f"the built-in {r.name} of froster-slurm {__version__} has changed since; {how}")


_WARNED: set[str] = set()


def report_stale(r: Resolved) -> None:
    """Say once per process (on stderr) that an override may miss an upgrade's fixes."""
    if not r.stale:
        return
    message = stale_message(r)
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"froster-slurm: warning: {message}", file=sys.stderr, flush=True)


def export(dest: Path, names: list[str], force: bool = False) -> list[Path]:
    """Copy the named built-ins (all when none is named) into ``dest``, stamped."""
    known = builtin_names()
    for name in names:
        if name not in known:
            raise NotFoundError(f"no template or jobscript named {name!r}; names: "
                                f"{', '.join(sorted(known))}")
    chosen = names or sorted(known)
    clash = [n for n in chosen if (dest / n).exists()]
    if clash and not force:
        raise UserError(f"{dest} already has {', '.join(clash)}; use --force to overwrite")
    written = []
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            (dest / name).write_text(add_stamp(name, known[name][1]))
            written.append(dest / name)
    except PermissionError as e:
        raise UserError(f"cannot write {e.filename or dest}: {e.strerror} (a site templates "
                        "directory is for admins)") from e
    return written


def diff(r: Resolved) -> str:
    """Unified diff of the built-in against the site file (stamp line left out)."""
    if r.site_path is None:
        return ""
    _, body = split_stamp(r.text if r.origin == "site" else r.site_path.read_text())
    return "".join(difflib.unified_diff(
        r.builtin_text.splitlines(keepends=True), body.splitlines(keepends=True),
        fromfile=f"built-in {r.name} (froster-slurm {__version__})", tofile=str(r.site_path)))
