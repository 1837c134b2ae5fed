"""Task kinds, by the name a config uses for them: the one list of kinds.

A kind is one module, with its options (a `TaskSpec` subclass) and its behaviour (a `TaskKind`),
and one line below. Importing the kinds imports neither torch nor transformers, so that a
config validates in a fraction of a second.
"""

from mtlm.tasks.base import TaskKind
from mtlm.tasks.classification import Classification
from mtlm.tasks.extractive_qa import ExtractiveQA
from mtlm.tasks.language_modeling import LanguageModeling
from mtlm.tasks.multiple_choice import MultipleChoice
from mtlm.tasks.regression import Regression
from mtlm.tasks.spec import TaskSpec
from mtlm.tasks.text_to_text import TextToText
from mtlm.tasks.token_classification import TokenClassification

KINDS: dict[str, type[TaskKind]] = {
    kind.name: kind
    for kind in (
        Classification,
        Regression,
        TokenClassification,
        MultipleChoice,
        ExtractiveQA,
        TextToText,
        LanguageModeling,
    )
}

__all__ = ["KINDS", "TaskKind", "TaskSpec"]
