"""Cleaning-step declarations: the classes behind :mod:`headwater.transforms`.

A step is a frozen keyword-only dataclass — which column, which bounds, which fit range —
that checks its fields when it is built. Feature views hold them
(``FeatureView(..., transforms=[...])``); :mod:`headwater.transforms.pipeline` compiles them to
DuckDB SQL and runs them.
"""

from headwater.definitions.steps.base import (
    FitRange,
    Step,
    Value,
    step_key,
    step_list,
)
from headwater.definitions.steps.shape import (
    FRAMES,
    PIVOT_AGGREGATIONS,
    ColumnsStep,
    Dedupe,
    Drop,
    Pivot,
    PythonTransform,
    Rename,
    TableFunction,
    Unpivot,
    check_frame,
)
from headwater.definitions.steps.values import (
    OUTLIER_METHODS,
    STRATEGIES,
    Cast,
    Clip,
    ColumnStep,
    FillNull,
    Hash,
    Mask,
    Normalize,
    Outliers,
    Scale,
    Standardize,
)

__all__ = [
    "FRAMES",
    "OUTLIER_METHODS",
    "PIVOT_AGGREGATIONS",
    "STRATEGIES",
    "Cast",
    "Clip",
    "ColumnStep",
    "ColumnsStep",
    "Dedupe",
    "Drop",
    "FillNull",
    "FitRange",
    "Hash",
    "Mask",
    "Normalize",
    "Outliers",
    "Pivot",
    "PythonTransform",
    "Rename",
    "Scale",
    "Standardize",
    "Step",
    "TableFunction",
    "Unpivot",
    "Value",
    "check_frame",
    "step_key",
    "step_list",
]
