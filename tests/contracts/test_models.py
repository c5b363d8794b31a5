"""Every model family in the registry, on every input kind it reads, through one checklist."""

import pytest

from layerforge.models import FAMILIES

from .checklists import check_export, check_family

CASES = [(family, kind) for family, entry in FAMILIES.items() for kind in entry.reads]


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_family_contract(family, kind, tmp_path):
    check_family(family, kind, tmp_path)


def test_every_family_is_covered():
    assert {family for family, _ in CASES} == set(FAMILIES)


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_family_exports(family, kind, tmp_path):
    check_export(family, kind, tmp_path)
