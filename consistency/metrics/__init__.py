"""Pure numerical agreement core (numpy / pandas in, plain data out; no Django).

Public functions
----------------
LabelTable.from_frame             factorize a long (item, labeler, value) frame
krippendorff_alpha                alpha from (items, values) at any level
AgreementStats.from_labels/merge  mergeable sufficient statistics (chunks of items)
summarize                         the DESIGN "Results of an agreement run" dict
slice_summary                     alpha + HLP (+CIs) on a subset of items
fleiss_kappa, cohen_kappa         stand-alone kappas
majority_consensus, dawid_skene   per-item consensus
normalize_transcript, normalization_rules, word_error_rate, transcription_agreement
"""

from .alpha import AgreementStats, krippendorff_alpha
from .summary import slice_summary, summarize
from .table import LEVELS, LabelTable

__all__ = [
    "LEVELS",
    "AgreementStats",
    "LabelTable",
    "krippendorff_alpha",
    "slice_summary",
    "summarize",
]
