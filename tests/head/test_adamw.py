"""stages/head/adamw.py: the train loop's AdamW step against torch.optim's fused AdamW."""
import torch

from stages.head import hateclipper


def test_the_heads_adamw_steps_exactly_as_torch_optims_fused_one():
    """The train loop's optimizer against torch.optim.AdamW(fused=True) on the same gradients:
    the same weights bit for bit, at every step (weight decay on; the first step's gradient is
    zero, so decay alone moves the weights). The GPU check steps the same on its device."""
    from benchmarks import gpu_check

    for fusion, aux in (("cross", 0), ("attention_m", 0), ("align", 3)):
        config = hateclipper.HeadConfig(image_dim=6, text_dim=4, fusion=fusion, map_dim=4,
                                        num_mapping_layers=1, num_pre_output_layers=1,
                                        drop_probs=(0.1, 0.4, 0.2), runs=2, aux_outputs=aux)
        head = hateclipper.HateClipper(config)
        # the loop steps and keeps only `weights`: it must hold every layer of every run
        assert [name for name, _ in head.named_parameters()] == ["weights"], fusion
        gap, stepped = gpu_check.adamw_against_torch_optim(head.weights.detach(), steps=6)
        assert gap == 0, fusion  # after every one of the six steps
        assert not torch.equal(stepped, head.weights), fusion
