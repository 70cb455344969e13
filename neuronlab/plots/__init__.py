"""Plot builders: pure functions from scores and neuron sets to plotly figures (no Streamlit here).

Figures keep the numbers they show readable from the figure: heatmap ``z``, bar ``y``, and for Venn and
UpSet charts ``fig.layout.meta`` lists the regions as ``{"sets": [names], "count": n}``.

Modules: ``scores`` (the score heatmap), ``overlap`` (counts per layer, Jaccard, Venn, UpSet), ``layers`` (the
layer view), ``neurons`` (the neuron card), ``transfer`` (donor similarity, the minimal-subset curve),
``evaluation`` (safety and utility side by side), ``bias`` (stereotype and LM scores), ``matches`` (a
user-defined function's matching replies) and ``style`` (palette and
text sizes shared by all).
"""
from neuronlab.plots.bias import bias_figure
from neuronlab.plots.evaluation import EVAL_CELLS, EVAL_PANELS, evaluation_figure
from neuronlab.plots.layers import layer_view_figure
from neuronlab.plots.matches import hits_figure
from neuronlab.plots.overlap import (
                                     counts_by_language_figure,
                                     jaccard_figure,
                                     jaccard_matrix_figure,
                                     upset_figure,
                                     venn_figure,
)
from neuronlab.plots.scores import score_heatmap
from neuronlab.plots.style import FONT, MATRIX_OFF, MATRIX_ON, PALETTE
from neuronlab.plots.transfer import SAME, similarity_figure, transfer_curve_figure

__all__ = ["bias_figure", "EVAL_CELLS", "EVAL_PANELS", "FONT", "MATRIX_OFF", "MATRIX_ON", "PALETTE", "SAME",
           "counts_by_language_figure", "evaluation_figure", "jaccard_figure", "jaccard_matrix_figure", "layer_view_figure",
           "hits_figure", "score_heatmap",
           "similarity_figure", "transfer_curve_figure", "upset_figure", "venn_figure"]
