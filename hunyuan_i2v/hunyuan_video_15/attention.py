"""Attention for HunyuanVideo-1.5's blocks with a key mask instead of a query-by-key mask.

diffusers' HunyuanVideo15AttnProcessor2_0 turns the padded-text mask into a
[batch, 1, S, S] boolean tensor (twice over while building it): 2 x S^2 bytes,
about 25 GB at 720p x 121 frames and 5 GB at 480p, for no gain. Masking only
the keys gives every real token the same attention (a padded token is never
attended to either way); only the padded tokens' own rows differ, and nothing
reads them. No library offers this processor, so it is written here and set
on each block's attention through diffusers' processor API, leaving the model
class as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KeyMaskAttnProcessor:
    """The 1.5 double-block attention (q/k norm, rope on image tokens, joint image + text), masked by key."""

    _attention_backend = None  # set by ModelMixin.set_attention_backend, as for diffusers' own processors
    _parallel_config = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.embeddings import apply_rotary_emb

        def heads(x):
            return x.unflatten(2, (attn.heads, -1))

        query, key, value = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
        query, key = attn.norm_q(query), attn.norm_k(key)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        text_len = 0
        if encoder_hidden_states is not None:
            text_len = encoder_hidden_states.shape[1]
            text_q = heads(attn.add_q_proj(encoder_hidden_states))
            text_k = heads(attn.add_k_proj(encoder_hidden_states))
            text_v = heads(attn.add_v_proj(encoder_hidden_states))
            if attn.norm_added_q is not None:
                text_q = attn.norm_added_q(text_q)
            if attn.norm_added_k is not None:
                text_k = attn.norm_added_k(text_k)
            query, key, value = (torch.cat(pair, dim=1) for pair in ((query, text_q), (key, text_k), (value, text_v)))
        mask = attention_mask
        if attention_mask is not None and attention_mask.ndim == 2:
            batch, total = query.shape[0], query.shape[1]
            # The model's mask covers the text; image tokens in front of it are always valid. (A 4-D mask over
            # every key, as the sequence-parallel hooks give, is used as it is.)
            keys = F.pad(attention_mask.bool(), (total - attention_mask.shape[1], 0), value=True)
            mask = keys.view(batch, 1, 1, total)
        out = dispatch_attention_fn(
            query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False,
            backend=self._attention_backend, parallel_config=self._parallel_config,
        )
        out = out.flatten(2, 3).to(query.dtype)
        if encoder_hidden_states is None:
            return out, None
        image, text = out[:, :-text_len], out[:, -text_len:]
        image = attn.to_out[1](attn.to_out[0](image))
        text = attn.to_add_out(text)
        return image, text


def use_key_mask_attention(model: torch.nn.Module) -> None:
    """Give each double block of a 1.5 transformer the key-mask processor (the token refiner keeps its own)."""
    for block in model.transformer_blocks:
        block.attn.set_processor(KeyMaskAttnProcessor())
