"""The SQL files under sql/, read once at import and looked up by name ("tasks/get")."""

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

_PACKAGE = Path(__file__).resolve().parent
# A wheel carries the repository's sql/ inside the package as taskservice/queries (see
# pyproject.toml); a source checkout (the editable install) reads sql/ itself.
SQL_DIR = _PACKAGE / "queries" if (_PACKAGE / "queries").is_dir() else _PACKAGE.parent / "sql"


def load_queries(root: Path = SQL_DIR) -> Mapping[str, str]:
    """Every `<area>/<verb>.sql` below `root`, keyed by `<area>/<verb>`."""
    queries = {
        path.relative_to(root).with_suffix("").as_posix(): path.read_text()
        for path in sorted(root.rglob("*.sql"))
    }
    if not queries:
        raise FileNotFoundError(f"no SQL files under {root}")
    return MappingProxyType(queries)


QUERIES = load_queries()
