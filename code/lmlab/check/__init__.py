"""Instant feedback for the homework's labs: ``lmlab.check.<function>(your_function)``.

The student editions of the lab chapters (``book/student/<chapter>.ipynb`` on Colab) leave the functions the
homework asks for as stubs; the cell after each stub calls its check. A check runs your function and the book's
own (the function the chapter uses) on the same fixed and random cases, prints one line when all agree, and
otherwise raises :class:`CheckFailed` naming the case, what went in, what was expected and what came back, and
the first entry that differs. It never shows the reference's code.

The checks, by lab (each module's docstring lists its cases):

- the interpretability lab (homework problem 3; :mod:`lmlab.check.interpretability`): ``attention_head``,
  ``embed``, ``previous_token_head``, ``copying_head``, ``induction_logits``;
- the batch-size lab (problem 4; :mod:`lmlab.check.scaling`): ``sgd_steps``;
- the pruning lab (problem 7, MIT 6.S965 lab 1; :mod:`lmlab.check.pruning`): ``fine_grained_prune``,
  ``sensitivity_scan``, ``get_num_channels_to_keep``, ``get_input_channel_importance``, ``channel_prune``,
  ``apply_channel_sorting``;
- the quantization lab (problem 7, lab 2; :mod:`lmlab.check.quantization`): ``k_means_quantize``,
  ``get_quantized_range``, ``linear_quantize``, ``get_quantization_scale_and_zero_point``,
  ``linear_quantize_feature``, ``get_quantization_scale_for_weight``, ``linear_quantize_weight_per_channel``,
  ``linear_quantize_bias_per_output_channel``, ``shift_quantized_linear_bias``, ``quantized_linear``,
  ``shift_quantized_conv2d_bias``, ``quantized_conv2d``, ``fuse_conv_bn``.
"""

from __future__ import annotations

from lmlab.check._core import Case, CheckFailed, describe, difference, run_check
from lmlab.check.interpretability import attention_head, copying_head, embed, induction_logits, previous_token_head
from lmlab.check.pruning import (
    apply_channel_sorting,
    channel_prune,
    fine_grained_prune,
    get_input_channel_importance,
    get_num_channels_to_keep,
    sensitivity_scan,
)
from lmlab.check.quantization import (
    fuse_conv_bn,
    get_quantization_scale_and_zero_point,
    get_quantization_scale_for_weight,
    get_quantized_range,
    k_means_quantize,
    linear_quantize,
    linear_quantize_bias_per_output_channel,
    linear_quantize_feature,
    linear_quantize_weight_per_channel,
    quantized_conv2d,
    quantized_linear,
    shift_quantized_conv2d_bias,
    shift_quantized_linear_bias,
)
from lmlab.check.scaling import sgd_steps

__all__ = [
    "apply_channel_sorting",
    "attention_head",
    "Case",
    "channel_prune",
    "CheckFailed",
    "copying_head",
    "describe",
    "difference",
    "embed",
    "fine_grained_prune",
    "fuse_conv_bn",
    "get_input_channel_importance",
    "get_num_channels_to_keep",
    "get_quantization_scale_and_zero_point",
    "get_quantization_scale_for_weight",
    "get_quantized_range",
    "induction_logits",
    "k_means_quantize",
    "linear_quantize",
    "linear_quantize_bias_per_output_channel",
    "linear_quantize_feature",
    "linear_quantize_weight_per_channel",
    "previous_token_head",
    "quantized_conv2d",
    "quantized_linear",
    "run_check",
    "sensitivity_scan",
    "sgd_steps",
    "shift_quantized_conv2d_bias",
    "shift_quantized_linear_bias",
]
