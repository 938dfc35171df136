"""The documents that describe the code cannot drift from it."""

import re
from pathlib import Path

from metro_assets import docs_data_model
from metro_assets.definitions import build_defs
from metro_assets.settings import load_settings
from metro_assets.warehouse import schema_sql

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_data_model_doc_is_generated_from_the_schema():
    assert docs_data_model.main(["--check"]) == 0, "run `python -m metro_assets.docs_data_model` (make docs)"
    text = (DOCS / "DATA_MODEL.md").read_text()
    for table in re.findall(r"CREATE TABLE IF NOT EXISTS\s+([\w.]+)", schema_sql()):
        assert f"\n## {table}\n" in text


def test_a_schema_change_shows_in_the_generated_doc():
    changed = schema_sql() + "\n-- Coupons.\nCREATE TABLE IF NOT EXISTS coupons (\n    code VARCHAR, -- printed\n" \
                             "    day DATE NOT NULL\n);\n"
    text = docs_data_model.render(changed)
    assert "## coupons\n\nCoupons.\n" in text and "| `code` | VARCHAR | yes |  | printed |" in text
    assert text != docs_data_model.render(schema_sql())


def mermaid_graph(text: str):
    """Nodes per subgraph label, and edges, of the first Mermaid block."""
    block = re.search(r"```mermaid\n(.*?)```", text, re.S).group(1)
    groups, edges, group = {}, set(), None
    for line in block.splitlines():
        line = line.strip()
        if m := re.match(r'subgraph (\w+)\["(\w+)', line):
            group = (m.group(1), m.group(2))
        elif line == "end":
            group = None
        elif m := re.match(r'(\w+)\["', line):
            groups[m.group(1)] = group
        elif m := re.match(r"(\w+)\s*(?:-->|==>|-\..*?\.->)\s*(\w+)$", line):
            edges.add((m.group(1), m.group(2)))
    return groups, edges


def test_the_architecture_diagram_matches_the_asset_graph():
    graph = build_defs(load_settings()).resolve_asset_graph()
    assets = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()}
    groups, edges = mermaid_graph((DOCS / "ARCHITECTURE.md").read_text())
    nodes = {n: g for n, g in groups.items() if g is not None}
    assert set(nodes) == set(assets), "one line per asset in the diagram"
    for name, node in assets.items():
        assert nodes[name][1] == node.group_name, f"{name} drawn in group {nodes[name][1]}, is in {node.group_name}"
    raw_ids = {g[0] for n, g in nodes.items() if g[1] == "raw"}
    for name, node in assets.items():
        if node.group_name == "raw":
            continue
        parents = {p.to_user_string() for p in node.parent_keys}
        drawn = {a for a, b in edges if b == name}
        assert drawn - raw_ids == {p for p in parents if assets[p].group_name != "raw"}, name
        assert bool(drawn & raw_ids) == any(assets[p].group_name == "raw" for p in parents), name


def test_the_docs_say_where_the_api_documents_itself():
    architecture = (DOCS / "ARCHITECTURE.md").read_text()
    assert "http://127.0.0.1:8000/docs" in architecture and "/openapi.json" in architecture
    operations = (DOCS / "OPERATIONS.md").read_text()
    for setting in ("METRO_WAREHOUSE_LOCK_TIMEOUT", "METRO_RETRY_DELAY", "METRO_RETRAIN_CRON"):
        assert setting in operations


def test_operations_explains_every_asset_check():
    graph = build_defs(load_settings()).resolve_asset_graph()
    operations = (DOCS / "OPERATIONS.md").read_text()
    missing = sorted(k.name for k in graph.asset_check_keys if f"| `{k.name}` | {k.asset_key.to_user_string()} |"
                     not in operations)
    assert not missing, f"docs/OPERATIONS.md does not explain {missing}"
