"""stages/data/task.py: a task's labels and classes, and what it predicts."""
import numpy as np

from stages.data.task import Label, Task


def test_a_class_label_is_predicted_by_its_most_probable_class():
    task = Task.of((Label("harmful"),), (Label("intensity", ("not", "some", "very")),))
    probs = np.array([[0.7, 0.2, 0.5, 0.3], [0.4, 0.1, 0.1, 0.8]])
    assert task.predicted(probs).tolist() == [[1, 0, 1, 0], [0, 0, 0, 1]]
    assert task.names == ("harmful", "intensity=not", "intensity=some", "intensity=very")
    assert Task.from_json(task.to_json()) == task and not task.is_categorical
