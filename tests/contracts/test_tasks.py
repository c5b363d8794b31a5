"""Every task in the registry through one checklist: its declarations, then its example trained,
reloaded, evaluated again and predicted with."""

import pytest

from layerforge.tasks import TASKS

from .checklists import check_task_declarations, check_task_run


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_declarations(name):
    check_task_declarations(TASKS[name])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_trains_reloads_and_predicts(name, runs_dir):
    check_task_run(TASKS[name], runs_dir)
