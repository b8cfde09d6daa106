"""PRTR two-stage keypoint transformer (official `two_stage/lib/models/pose_transformer.py`) with official keys.

A person crop goes through a stride-32 backbone (ResNet-50/101/152 with frozen BatchNorm, or the classification-style
HRNet with its 2048-channel head), a 1x1 input projection to HIDDEN_DIM, a DETR encoder-decoder with a normalised
sine positional encoding and NUM_QUERIES learned queries, and two heads applied to every decoder layer: a class head
(NUM_JOINTS joints + one "no-object" class, the LAST index) and a 3-layer MLP whose sigmoid gives normalised (x, y)
crop coordinates. forward(x) returns {"pred_logits" [B,Q,J+1], "pred_coords" [B,Q,2], "aux_outputs": [{...}] for
decoder layers 0..L-2} (no aux_outputs when aux_loss is False), plus "out" = cat(pred_logits, pred_coords) [B,Q,J+3]
(a posekit addition: one tensor for the generic inference path and ONNX; the criterion ignores it).

State-dict layout as official: `transformer.encoder.layers.N.*`, `transformer.decoder.layers.N.*`,
`transformer.decoder.norm.*` (+ `transformer.encoder.norm.*` in pre-norm mode), `backbone.0.body.*` (the backbone),
`backbone.1.*` (only for the learned position embedding), `class_embed`, `kpt_embed.layers.N`, `query_embed`,
`input_proj`. Token order: row-major over (h, w); attention runs sequence-first, as DETR.

Conventions and deliberate differences from the official code:
- ResNet-152 is accepted (the released builder asserts resnet50/101 although the MPII res152 yamls exist).
- The ResNet backbone: every BatchNorm is a FrozenBatchNorm2d (buffers weight/bias/running_mean/running_var,
  x * w * rsqrt(var + 1e-5) + (b - mean * scale)); conv1 and layer1 have requires_grad False. The HRNet backbone
  keeps ordinary (trainable) BatchNorm and no frozen parameters.
- A fresh model is initialised without ImageNet weights (posekit never downloads): transformer matrices
  xavier-uniform as official, backbone as posekit's ResNet/HRNet init. Use MODEL.PRETRAINED to load weights.
- The HRNet backbone applies an existing branch's width-changing transition to its own branch (see hrnet.py); no
  official PRTR config changes an existing branch's width, so outputs are identical.
- DILATION true and the deformable transformer (MODEL.NAME deformable_pose_transformer) are refused with an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from posekit.errors import ConfigError
from posekit.models.hrnet import TINY_W16, HRNetConfig, PoseHighResolutionNet, hrnet_config, stage
from posekit.models.registry import register_model
from posekit.models.resnet import RESNET_SPEC, ResNetBackbone

RESNET_DEPTHS = (18, 34, 50, 101, 152)


# ----------------------------------------------------------------------------------------------------------------
# Backbones


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all buffers (no num_batches_tracked), eps 1e-5."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)  # torchvision ImageNet checkpoints carry it
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm2d inside `module` by a FrozenBatchNorm2d (in place); returns the module."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features, child.eps))
        else:
            freeze_batchnorm(child)
    return module


class ResNetBody(ResNetBackbone):
    """torchvision-layout ResNet stem + layer1..4 with frozen BN; forward returns the stride-32 layer4 map."""

    def __init__(self, depth: int = 50) -> None:
        super().__init__(depth)
        freeze_batchnorm(self)
        for name, p in self.named_parameters():
            if not name.startswith(("layer2", "layer3", "layer4")):
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class HRNetHighRes(PoseHighResolutionNet):
    """A pose HRNet without its final layer: forward returns the stage-4 highest-resolution map (stride 4), so
    every tensor of a heatmap HRNet but the final 1x1 conv has a place (key names unchanged)."""

    def __init__(self, cfg: HRNetConfig) -> None:
        super().__init__(replace(cfg, head="pose", upsample=0))
        del self.final_layer
        self.out_channels = self.pre_stage_channels[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


class BackboneBody(nn.Module):
    """Holder giving the official `backbone.0.body.*` key prefix."""

    def __init__(self, body: nn.Module, num_channels: int) -> None:
        super().__init__()
        self.body = body
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ----------------------------------------------------------------------------------------------------------------
# Positional encodings


def sine_position_encoding(h: int, w: int, num_pos_feats: int = 128, temperature: float = 10000.0,
                           device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised DETR sine encoding of an h x w map without padding: [1, 2*num_pos_feats, h, w] (y first, then x).

    Running counts 1..h and 1..w are divided by their last value (+1e-6) and scaled by 2*pi; feature i uses the
    frequency temperature^(2*floor(i/2)/num_pos_feats), even i sin and odd i cos (interleaved).
    """
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, h + 1, device=device, dtype=dtype)
    x = torch.arange(1, w + 1, device=device, dtype=dtype)
    y = y / (y[-1:] + eps) * scale
    x = x / (x[-1:] + eps) * scale
    i = torch.arange(num_pos_feats, device=device, dtype=dtype)
    dim_t = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / num_pos_feats)
    py = y[:, None] / dim_t  # [h, F]
    px = x[:, None] / dim_t  # [w, F]
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((py[:, None, :].expand(h, w, num_pos_feats), px[None, :, :].expand(h, w, num_pos_feats)), dim=2)
    return pos.permute(2, 0, 1).unsqueeze(0)


class PositionEmbeddingSine(nn.Module):
    """The fixed sine encoding (no parameters); forward(feature map) -> [1, C, h, w]."""

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sine_position_encoding(x.shape[-2], x.shape[-1], self.num_pos_feats, self.temperature,
                                      x.device, x.dtype)


class PositionEmbeddingLearned(nn.Module):
    """DETR's learned encoding: 50-entry row/column tables (keys backbone.1.row_embed / col_embed)."""

    def __init__(self, num_pos_feats: int = 128) -> None:
        super().__init__()
        self.row_embed = nn.Embedding(50, num_pos_feats)
        self.col_embed = nn.Embedding(50, num_pos_feats)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h > 50 or w > 50:
            raise ConfigError(f"POS_EMBED_METHOD learned supports feature maps up to 50x50, got {h}x{w}")
        col = self.col_embed.weight[:w]
        row = self.row_embed.weight[:h]
        pos = torch.cat((col[None].expand(h, w, -1), row[:, None].expand(h, w, -1)), dim=-1)
        return pos.permute(2, 0, 1).unsqueeze(0)


# ----------------------------------------------------------------------------------------------------------------
# DETR transformer (sequence-first tensors [S, B, d])


def _with_pos(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


class EncoderLayer(nn.Module):
    """Self-attention (position on queries and keys) + FFN, post-norm or pre-norm."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))

    def forward(self, src: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            s = self.norm1(src)
            q = _with_pos(s, pos)
            src = src + self.dropout1(self.self_attn(q, q, value=s, need_weights=False)[0])
            return src + self.dropout2(self._ffn(self.norm2(src)))
        q = _with_pos(src, pos)
        src = self.norm1(src + self.dropout1(self.self_attn(q, q, value=src, need_weights=False)[0]))
        return self.norm2(src + self.dropout2(self._ffn(src)))


class DecoderLayer(nn.Module):
    """Query self-attention, cross-attention to the memory, FFN; post-norm or pre-norm."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor | None,
                query_pos: torch.Tensor | None) -> torch.Tensor:
        key = _with_pos(memory, pos)
        if self.pre_norm:
            t = self.norm1(tgt)
            q = _with_pos(t, query_pos)
            tgt = tgt + self.dropout1(self.self_attn(q, q, value=t, need_weights=False)[0])
            t = self.norm2(tgt)
            tgt = tgt + self.dropout2(self.multihead_attn(_with_pos(t, query_pos), key, value=memory,
                                                          need_weights=False)[0])
            return tgt + self.dropout3(self._ffn(self.norm3(tgt)))
        q = _with_pos(tgt, query_pos)
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, q, value=tgt, need_weights=False)[0]))
        tgt = self.norm2(tgt + self.dropout2(self.multihead_attn(_with_pos(tgt, query_pos), key, value=memory,
                                                                 need_weights=False)[0]))
        return self.norm3(tgt + self.dropout3(self._ffn(tgt)))


class TransformerEncoder(nn.Module):
    """A stack of encoder layers (+ a final LayerNorm in pre-norm mode only)."""

    def __init__(self, layers: list[EncoderLayer], norm: nn.LayerNorm | None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    def forward(self, src: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, pos)
        return src if self.norm is None else self.norm(src)


class TransformerDecoder(nn.Module):
    """A stack of decoder layers; the shared final LayerNorm is applied to every layer's output -> [L, Q, B, d]."""

    def __init__(self, layers: list[DecoderLayer], norm: nn.LayerNorm) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor | None,
                query_pos: torch.Tensor | None) -> torch.Tensor:
        outs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos)
            outs.append(self.norm(tgt))
        return torch.stack(outs)


class Transformer(nn.Module):
    """DETR encoder-decoder: zero targets, learned query embedding, spatial PE on the memory keys."""

    def __init__(self, d_model: int = 256, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.0, pre_norm: bool = False) -> None:
        super().__init__()
        if d_model % nhead:
            raise ConfigError(f"MODEL.EXTRA.HIDDEN_DIM ({d_model}) must be divisible by NHEADS ({nhead})")
        if num_decoder_layers < 1:
            raise ConfigError(f"MODEL.EXTRA.DEC_LAYERS must be >= 1, got {num_decoder_layers}")
        self.encoder = TransformerEncoder(
            [EncoderLayer(d_model, nhead, dim_feedforward, dropout, pre_norm) for _ in range(num_encoder_layers)],
            nn.LayerNorm(d_model) if pre_norm else None)
        self.decoder = TransformerDecoder(
            [DecoderLayer(d_model, nhead, dim_feedforward, dropout, pre_norm) for _ in range(num_decoder_layers)],
            nn.LayerNorm(d_model))
        self.d_model = d_model
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: torch.Tensor, query_embed: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """src [B,d,h,w], query_embed [Q,B,d], pos [1 or B,d,h,w] -> decoder outputs [L, B, Q, d]."""
        b = src.shape[0]
        src = src.flatten(2).permute(2, 0, 1)  # [hw, B, d]
        pos = pos.flatten(2).permute(2, 0, 1).expand(-1, b, -1)
        query_pos = query_embed
        memory = self.encoder(src, pos)
        hs = self.decoder(torch.zeros_like(query_pos), memory, pos, query_pos)
        return hs.transpose(1, 2)


class MLP(nn.Module):
    """`num_layers` linear layers with ReLU between (keys layers.N)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


# ----------------------------------------------------------------------------------------------------------------
# The network


@dataclass(frozen=True)
class PRTRConfig:
    """MODEL.EXTRA of pose_transformer (two_stage) plus NUM_JOINTS; `backbone` is resnet<depth> or hrnet."""

    backbone: str = "resnet50"
    hrnet: HRNetConfig | None = None  # the STAGE1..4 blocks when backbone == "hrnet"
    num_joints: int = 17
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.0
    num_queries: int = 100
    pre_norm: bool = False
    aux_loss: bool = True
    pos_embed: str = "sine"  # sine | learned
    dilation: bool = False
    eos_coef: float = 0.1  # loss options kept with the model config (used by the set criterion)
    kpt_loss_coef: float = 5.0
    # posekit options for small inputs (official values first; no official config sets them):
    feature: str = "cls"  # which HRNet map feeds the transformer: "cls" = the official 2048-channel stride-32 head;
    #   "hr" = the pose HRNet's highest-resolution stage-4 map (stride 4, keys of a heatmap HRNet minus final_layer)
    token_pool: int = 1  # average-pool the backbone map by this factor before input_proj (fewer, coarser tokens)
    value_pos: bool = False  # add the position encoding to the transformer input itself (official: only to the
    #   attention queries/keys), so an attended token's value carries its location to the coordinate head

    @classmethod
    def from_official(cls, model: Mapping[str, Any]) -> PRTRConfig:
        """Build from an official MODEL dict (NAME, NUM_JOINTS, EXTRA with NUM_LAYERS 50/101/152/hrnet ...)."""
        name = str(model.get("NAME", "pose_transformer"))
        if name == "deformable_pose_transformer":
            raise ConfigError("MODEL.NAME deformable_pose_transformer: the deformable PRTR needs the "
                              "MultiScaleDeformableAttention CUDA extension (Deformable DETR), which posekit does "
                              "not implement; use a MODEL.NAME pose_transformer config")
        if name != "pose_transformer":
            raise ConfigError(f"MODEL.NAME {name!r}: expected pose_transformer")
        extra = model.get("EXTRA", {}) or {}
        layers = str(extra.get("NUM_LAYERS", 50)).lower()
        if layers == "hrnet":
            backbone, hr = "hrnet", HRNetConfig.from_official(extra, head="cls")
        elif layers.isdigit() and int(layers) in RESNET_DEPTHS:
            backbone, hr = f"resnet{int(layers)}", None
        else:
            raise ConfigError(f"MODEL.EXTRA.NUM_LAYERS {extra.get('NUM_LAYERS')!r}: expected one of "
                              f"{', '.join(map(str, RESNET_DEPTHS))} or hrnet")
        return cls(backbone=backbone, hrnet=hr, num_joints=int(model.get("NUM_JOINTS", 17) or 17),
                   hidden_dim=int(extra.get("HIDDEN_DIM", 256)), nheads=int(extra.get("NHEADS", 8)),
                   enc_layers=int(extra.get("ENC_LAYERS", 6)), dec_layers=int(extra.get("DEC_LAYERS", 6)),
                   dim_feedforward=int(extra.get("DIM_FEEDFORWARD", 2048)),
                   dropout=float(extra.get("DROPOUT", 0.0)), num_queries=int(extra.get("NUM_QUERIES", 100)),
                   pre_norm=bool(extra.get("PRE_NORM", False)), aux_loss=bool(extra.get("AUX_LOSS", True)),
                   pos_embed=str(extra.get("POS_EMBED_METHOD", "sine")).lower(),
                   dilation=bool(extra.get("DILATION", False)), eos_coef=float(extra.get("EOS_COEF", 0.1)),
                   kpt_loss_coef=float(extra.get("KPT_LOSS_COEF", 5.0)))


def _build_backbone(cfg: PRTRConfig) -> BackboneBody:
    if cfg.dilation:
        raise ConfigError("MODEL.EXTRA.DILATION true: no official PRTR config dilates layer4; posekit builds "
                          "stride-32 backbones only")
    if cfg.feature not in ("cls", "hr"):
        raise ConfigError(f"PRTR feature {cfg.feature!r}: expected cls (official stride-32 head) or hr")
    if cfg.backbone == "hrnet":
        if cfg.hrnet is None:
            raise ConfigError("PRTR hrnet backbone needs the MODEL.EXTRA.STAGE1..4 blocks")
        body: nn.Module = (PoseHighResolutionNet(replace(cfg.hrnet, head="cls")) if cfg.feature == "cls"
                           else HRNetHighRes(cfg.hrnet))
        return BackboneBody(body, body.out_channels)
    if cfg.feature != "cls":
        raise ConfigError(f"PRTR feature {cfg.feature!r} needs the hrnet backbone (ResNet: layer4 only)")
    if not cfg.backbone.startswith("resnet") or not cfg.backbone[6:].isdigit() \
            or int(cfg.backbone[6:]) not in RESNET_SPEC:
        raise ConfigError(f"PRTR backbone {cfg.backbone!r}: expected resnet18/34/50/101/152 or hrnet")
    body = ResNetBody(int(cfg.backbone[6:]))
    return BackboneBody(body, body.out_channels)


class PoseTransformer(nn.Module):
    """PRTR: backbone -> input_proj -> DETR transformer -> class / coordinate heads on every decoder layer."""

    def __init__(self, cfg: PRTRConfig) -> None:
        super().__init__()
        if cfg.pos_embed not in ("sine", "learned"):
            raise ConfigError(f"MODEL.EXTRA.POS_EMBED_METHOD must be sine or learned, got {cfg.pos_embed!r}")
        if cfg.hidden_dim % 2:
            raise ConfigError(f"MODEL.EXTRA.HIDDEN_DIM must be even, got {cfg.hidden_dim}")
        if cfg.num_queries < cfg.num_joints:
            raise ConfigError(f"MODEL.EXTRA.NUM_QUERIES ({cfg.num_queries}) must be >= NUM_JOINTS "
                              f"({cfg.num_joints}): each joint is matched to a distinct query")
        self.cfg = cfg
        self.num_joints = cfg.num_joints
        self.num_queries = cfg.num_queries
        self.aux_loss = cfg.aux_loss
        d = cfg.hidden_dim
        self.transformer = Transformer(d, cfg.nheads, cfg.enc_layers, cfg.dec_layers, cfg.dim_feedforward,
                                       cfg.dropout, cfg.pre_norm)
        body = _build_backbone(cfg)
        pos: nn.Module = PositionEmbeddingSine(d // 2) if cfg.pos_embed == "sine" else PositionEmbeddingLearned(d // 2)
        self.backbone = nn.Sequential(body, pos)
        self.class_embed = nn.Linear(d, cfg.num_joints + 1)
        self.kpt_embed = MLP(d, d, 2, 3)
        self.query_embed = nn.Embedding(cfg.num_queries, d)
        self.input_proj = nn.Conv2d(body.num_channels, d, kernel_size=1)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        feat = self.backbone[0](x)
        if self.cfg.token_pool > 1:
            feat = F.avg_pool2d(feat, self.cfg.token_pool, ceil_mode=True)
        pos = self.backbone[1](feat).to(feat.dtype)
        # The query table goes in repeated per image (a new tensor: a Parameter argument breaks FlopCounterMode).
        queries = self.query_embed.weight.unsqueeze(1).repeat(1, x.shape[0], 1)
        src = self.input_proj(feat)
        if self.cfg.value_pos:
            src = src + pos
        hs = self.transformer(src, queries, pos)  # [L, B, Q, d]
        logits = self.class_embed(hs)
        coords = self.kpt_embed(hs).sigmoid()
        out: dict[str, Any] = {"pred_logits": logits[-1], "pred_coords": coords[-1]}
        # posekit addition: both last-layer heads in one tensor [B,Q,J+3] (logits, x, y), the single output that
        # posekit's generic inference runner (main_output picks "out") and the ONNX backends decode.
        out["out"] = torch.cat([logits[-1], coords[-1]], dim=-1)
        if self.aux_loss:
            out["aux_outputs"] = [{"pred_logits": a, "pred_coords": b}
                                  for a, b in zip(logits[:-1], coords[:-1], strict=True)]
        return out


def build_prtr(cfg: PRTRConfig, **overrides: Any) -> PoseTransformer:
    """A PoseTransformer from a config with dataclass-field overrides (num_joints, aux_loss, ...)."""
    bad = set(overrides) - set(PRTRConfig.__dataclass_fields__)
    if bad:
        raise ConfigError(f"unknown PRTR option(s) {sorted(bad)}; allowed: {sorted(PRTRConfig.__dataclass_fields__)}")
    return PoseTransformer(replace(cfg, **overrides))


def trainable_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(non-backbone, backbone) trainable parameters: official split by 'backbone' in the parameter name."""
    head, back = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (back if "backbone" in name else head).append(p)
    return head, back


# ----------------------------------------------------------------------------------------------------------------
# Zoo


def _hrnet_w32_cls() -> HRNetConfig:
    return replace(hrnet_config(32, head="cls"), stage1=stage(1, "BOTTLENECK", [4], [64]))


COCO_RES = dict(codec="coord", task="prtr", family="prtr")
MPII_RES = dict(codec="coord", task="prtr", family="prtr", skeleton="mpii")


def _res(depth: int, **kw: Any) -> PoseTransformer:
    return build_prtr(PRTRConfig(backbone=f"resnet{depth}"), **kw)


def _w32(**kw: Any) -> PoseTransformer:
    return build_prtr(PRTRConfig(backbone="hrnet", hrnet=_hrnet_w32_cls()), **kw)


@register_model(input_size=(288, 384), heatmap_size=(72, 96), **COCO_RES)
def prtr_res50_384x288(**overrides: Any) -> nn.Module:
    """PRTR ResNet-50, COCO 384x288 (41.5 M params, 11.05 GMACs; COCO val AP 68.2 official)."""
    return _res(50, **overrides)


@register_model(input_size=(384, 512), heatmap_size=(96, 128), **COCO_RES)
def prtr_res50_512x384(**overrides: Any) -> nn.Module:
    """PRTR ResNet-50, COCO 512x384 (COCO val AP 71.0 official)."""
    return _res(50, **overrides)


@register_model(input_size=(288, 384), heatmap_size=(72, 96), **COCO_RES)
def prtr_res101_384x288(**overrides: Any) -> nn.Module:
    """PRTR ResNet-101, COCO 384x288 (COCO val AP 70.1 official)."""
    return _res(101, **overrides)


@register_model(input_size=(384, 512), heatmap_size=(96, 128), **COCO_RES)
def prtr_res101_512x384(**overrides: Any) -> nn.Module:
    """PRTR ResNet-101, COCO 512x384 (COCO val AP 72.0 official)."""
    return _res(101, **overrides)


@register_model(input_size=(288, 384), heatmap_size=(72, 96), **COCO_RES)
def prtr_hrnet_w32_384x288(**overrides: Any) -> nn.Module:
    """PRTR HRNet-W32 (classification head, 2048 ch), COCO 384x288 (57.2 M params, 21.70 GMACs; AP 73.1)."""
    return _w32(**overrides)


@register_model(input_size=(384, 512), heatmap_size=(96, 128), **COCO_RES)
def prtr_hrnet_w32_512x384(**overrides: Any) -> nn.Module:
    """PRTR HRNet-W32, COCO 512x384 (COCO val AP 73.3 official)."""
    return _w32(**overrides)


def _mpii(depth: int | str, size: int) -> Any:
    def builder(**overrides: Any) -> nn.Module:
        kw = {"num_joints": 16, **overrides}
        return _w32(**kw) if depth == "hrnet" else _res(int(depth), **kw)

    tag = "hrnet_w32" if depth == "hrnet" else f"res{depth}"
    builder.__name__ = builder.__qualname__ = f"prtr_{tag}_{size}x{size}_mpii"
    builder.__doc__ = f"PRTR {tag}, MPII {size}x{size}, 16 joints."
    return register_model(input_size=(size, size), heatmap_size=(size // 4, size // 4), **MPII_RES)(builder)


for _depth, _sizes in ((50, (256, 384, 512)), (101, (256, 384, 512)), (152, (256, 384)), ("hrnet", (256, 384))):
    for _size in _sizes:
        globals()[f"prtr_{'hrnet_w32' if _depth == 'hrnet' else f'res{_depth}'}_{_size}x{_size}_mpii"] = \
            _mpii(_depth, _size)


# Small CPU-trainable PRTR (our own choice, no official counterpart): a tiny classification HRNet (widths
# 16/32/64/128, one block per branch, incre widths halved to 16..128; the final 2048-channel conv is kept), 2+2
# transformer layers of width 64 with 4 heads, 34 queries, 128x96 input -> a 4x3 token map. 4.30 M params,
# 0.168 GMACs (the official incre widths gave 10.95 M / 0.342).
TINY_HRNET_CLS = HRNetConfig(
    stage1=stage(1, "BOTTLENECK", [1], [16]),
    stage2=stage(1, "BASIC", [1, 1], [16, 32]),
    stage3=stage(1, "BASIC", [1, 1, 1], [16, 32, 64]),
    stage4=stage(1, "BASIC", [1, 1, 1, 1], [16, 32, 64, 128]),
    head="cls",
    head_channels=(16, 32, 64, 128),  # half the official incre widths: the cls head was ~60% of the MACs
)
SMALL = PRTRConfig(backbone="hrnet", hrnet=TINY_HRNET_CLS, hidden_dim=64, nheads=4, enc_layers=2, dec_layers=2,
                   dim_feedforward=256, num_queries=34)


@register_model(input_size=(96, 128), heatmap_size=(24, 32), **COCO_RES)
def prtr_hrnet_tiny_128x96(**overrides: Any) -> nn.Module:
    """Small CPU PRTR: tiny HRNet (widths 16-128) + 2/2-layer width-64 transformer, 34 queries, 128x96."""
    return build_prtr(SMALL, **overrides)


# PRTR on the heatmap demo's backbone (our own choice, configs/synth/prtr_demo_backbone.yaml): the demo HRNet's
# trunk (hrnet_w16_tiny_128x96 minus its final 1x1 conv: MODEL.PRETRAINED loads 240 of its 242 tensors) feeds its
# stride-4 map (24x16 = 384 tokens at 96x64) to a 2-layer decoder, with the position encoding added to the tokens
# (see PRTRConfig). No encoder: over 384 tokens the 2 encoder layers made a step 7.5x slower (3.2 s vs 0.43 s per
# batch of 32, 1 busy thread) and the HRNet map already mixes the whole crop. 17 queries: after 120 iterations
# the class error was 6% with 17 queries, 33% with 34 (held-out AP 0.033 vs 0.027).
DEMO_HR = replace(SMALL, hrnet=TINY_W16, feature="hr", value_pos=True, enc_layers=0, num_queries=17)


@register_model(input_size=(96, 128), heatmap_size=(24, 32), **COCO_RES)
def prtr_hrnet_w16_tiny_hr_128x96(**overrides: Any) -> nn.Module:
    """Small CPU PRTR on the demo HRNet's stride-4 map (24x16 tokens at 96x64), 2-layer width-64 decoder, 17 queries."""
    return build_prtr(DEMO_HR, **overrides)


def prtr_from_official(model: Mapping[str, Any]) -> PoseTransformer:
    """The network of an official PRTR MODEL block (MODEL.NAME pose_transformer + EXTRA)."""
    return PoseTransformer(PRTRConfig.from_official(model))


__all__ = ["FrozenBatchNorm2d", "PRTRConfig", "PoseTransformer", "Transformer", "build_prtr",
           "prtr_from_official", "sine_position_encoding", "trainable_groups"]
