"""Pure numerical agreement core (numpy / pandas in, plain data out; no Django).

Public functions
----------------
LabelTable.from_frame              factorize a long (item, labeler, value) frame
krippendorff_alpha                 alpha from (items, values) at any level
AgreementStats.from_labels / merge mergeable sufficient statistics (chunks of items)
summarize                          the DESIGN "Results of an agreement run" dict
slice_summary                      alpha + HLP (+CIs) on a subset of items
slice_summary_from_counts          the same from the subset's per-item value counts (no gold)
item_value_counts                  those counts for every item of an AgreementStats
fleiss_kappa, cohen_kappa          stand-alone kappas
gwet_ac1, gwet_ac2, gwet_weights   Gwet's AC1 / AC2 from item x category counts
majority_consensus, dawid_skene    per-item consensus
normalize_transcript, normalization_rules, word_error_rate, transcription_agreement
"""

from .alpha import LEVELS, AgreementStats, krippendorff_alpha
from .consensus import DawidSkeneResult, dawid_skene, majority_consensus
from .gwet import GwetResult, gwet_ac, gwet_ac1, gwet_ac2, gwet_ac_bootstrap, gwet_weights
from .kappa import cohen_kappa, fleiss_kappa
from .summary import item_value_counts, slice_summary, slice_summary_from_counts, summarize
from .table import LabelTable
from .transcription import (
    DEFAULT_FILLERS,
    normalization_rules,
    normalize_transcript,
    transcription_agreement,
    word_error_rate,
)

__all__ = [
    "DEFAULT_FILLERS",
    "LEVELS",
    "AgreementStats",
    "DawidSkeneResult",
    "GwetResult",
    "LabelTable",
    "cohen_kappa",
    "dawid_skene",
    "fleiss_kappa",
    "gwet_ac",
    "gwet_ac1",
    "gwet_ac2",
    "gwet_ac_bootstrap",
    "gwet_weights",
    "krippendorff_alpha",
    "majority_consensus",
    "normalization_rules",
    "normalize_transcript",
    "slice_summary",
    "slice_summary_from_counts",
    "item_value_counts",
    "summarize",
    "transcription_agreement",
    "word_error_rate",
]
