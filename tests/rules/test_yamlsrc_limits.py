"""The limits of the one YAML loader: size, nesting, aliases, and the library's own failures,
each a ``file:line:col`` problem (rules.yamlsrc)."""

from __future__ import annotations

import pytest

from rules.yamlsrc import MAX_BYTES, MAX_DEPTH, SourceError, load_yaml


def problems(text: str) -> list[str]:
    with pytest.raises(SourceError) as caught:
        load_yaml(text, "f.yaml")
    return [str(p) for p in caught.value.problems]


def nested(levels: int) -> str:
    """``levels`` block mappings, one per line, each indented one more."""
    return "".join(f"{' ' * i}k{i}:\n" for i in range(levels)) + f"{' ' * levels}leaf\n"


def test_nesting_up_to_the_limit_loads_and_one_more_level_is_refused_where_it_starts() -> None:
    data = load_yaml(nested(MAX_DEPTH), "f.yaml")
    for i in range(MAX_DEPTH - 1):
        data = data[f"k{i}"]
    assert data == {f"k{MAX_DEPTH - 1}": "leaf"}
    assert problems(nested(MAX_DEPTH + 1)) == [
        f"f.yaml:{MAX_DEPTH + 1}:{MAX_DEPTH + 1}: YAML: nested deeper than {MAX_DEPTH} levels"
    ]


def test_flow_nesting_counts_the_same() -> None:
    # the top mapping is level 1: the 32nd "[" (column 3 + 32) opens level 33
    assert problems("x: " + "[" * 5000 + "]" * 5000) == [
        f"f.yaml:1:{3 + MAX_DEPTH}: YAML: nested deeper than {MAX_DEPTH} levels"
    ]


def test_an_alias_is_refused_where_it_is_used_and_an_anchor_alone_is_harmless() -> None:
    assert load_yaml("a: &base {x: 1}\nb: 2\n", "f.yaml") == {"a": {"x": 1}, "b": 2}
    assert problems("a: &base {x: 1}\nb:\n  <<: *base\n") == [
        "f.yaml:3:7: YAML: aliases (*base) are not accepted: write the value out"
    ]
    assert problems("a: &loop [*loop]\n") == [
        "f.yaml:1:11: YAML: aliases (*loop) are not accepted: write the value out"
    ]


def test_a_merge_key_with_the_mapping_written_out_still_merges() -> None:
    assert load_yaml("a:\n  <<: {x: 1}\n  y: 3\n", "f.yaml") == {"a": {"x": 1, "y": 3}}


def test_the_size_limit_counts_utf8_bytes() -> None:
    exactly = "a: 1\n#" + "x" * (MAX_BYTES - 6)
    assert load_yaml(exactly, "f.yaml") == {"a": 1}
    assert problems(exactly + "x") == ["f.yaml:1:1: file is larger than 1 MiB, the limit for a "
                                       "YAML file"]
    two_bytes_each = "a: 1\n#" + "é" * ((MAX_BYTES - 6) // 2 + 1)
    assert len(two_bytes_each) < MAX_BYTES
    assert problems(two_bytes_each)[0].startswith("f.yaml:1:1: file is larger than 1 MiB")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!int abc\n", "f.yaml:1:4: YAML: cannot read 'abc' as tag:yaml.org,2002:int"),
        ("a: 2024-13-45\n",
         "f.yaml:1:4: YAML: cannot read '2024-13-45' as tag:yaml.org,2002:timestamp"),
        ("a: !!timestamp soon\n",
         "f.yaml:1:4: YAML: cannot read 'soon' as tag:yaml.org,2002:timestamp"),
        ("a: !!bool maybe\n", "f.yaml:1:4: YAML: cannot read 'maybe' as tag:yaml.org,2002:bool"),
        ("? !!float x\n: 1\n", "f.yaml:1:3: YAML: cannot read 'x' as tag:yaml.org,2002:float"),
        ("a: 1\nb: \x01\n",
         "f.yaml:2:4: YAML: special characters are not allowed (character #x0001)"),
        ("a: !python/object:os.system x\n",
         "f.yaml:1:4: YAML: could not determine a constructor for the tag "
         "'!python/object:os.system'"),
    ],
)
def test_what_the_yaml_library_fails_on_is_a_problem_at_its_place(text, expected) -> None:
    assert problems(text) == [expected]


def test_problems_of_values_are_all_reported_with_duplicate_keys() -> None:
    assert problems("a: !!int x\na: 2\nb: !!float y\n") == [
        "f.yaml:1:4: YAML: cannot read 'x' as tag:yaml.org,2002:int",
        "f.yaml:2:1: duplicate key 'a' (first at line 1)",
        "f.yaml:3:4: YAML: cannot read 'y' as tag:yaml.org,2002:float",
    ]
