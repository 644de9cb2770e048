"""A CODI model (a causal LM with LoRA, three added tokens and a projection) loaded from a local
checkpoint, and its continuous-thought inference, batched with left padding.

CODI (Shen et al. 2025; github.com/zhenyi4/codi) reasons in "thoughts": after the question and a
begin-of-thought token (bot), the last layer's last hidden state goes through the projection
and is fed back as the next input embedding, ``latent_steps`` times (one fewer when recording the
seed's way), with the KV cache; then an end-of-thought token (eot) and greedy decoding of the
answer. Needs the ``extract`` extra (transformers, peft); only the extraction job imports this
module.
"""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .atomic import load_torch
from .errors import InputError, first_line
from .extract import RANDOM_MODEL_KEY, WEIGHT_FILES, checkpoint_weights

CONVENTIONS = ("seed", "codi")
ADDED_TOKENS = 3  # pad, bot, eot: appended to the base vocabulary, in this order
TOP_TOKENS = 5  # what a thought decodes to: its most likely tokens through the LM head


@dataclass
class Thoughts:
    """One batch's inference. ``hidden``: float32 [B, L, T, H], the recorded layers at the T
    recorded positions; ``fed``: [B, S, H], the S latent embeddings fed back (S = latent_steps, one fewer
    under the ``seed`` convention);
    ``top_ids``/``top_probs``: [B, T, TOP_TOKENS], the tokens each recorded position's last-layer state
    decodes to through the LM head; ``answers``: the decoded answer tokens of each problem."""

    hidden: torch.Tensor
    fed: torch.Tensor
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    answers: list[list[int]]


class CodiModel(nn.Module):
    """The LM (with LoRA) as ``codi`` and the projection as ``prj``: the attribute names of CODI's
    own module, so its checkpoints' keys load as they are."""

    def __init__(self, lm: nn.Module, prj: nn.Sequential, tokenizer, base_vocab: int):
        super().__init__()
        self.codi, self.prj, self.tokenizer = lm, prj, tokenizer
        self.pad_id, self.bot_id, self.eot_id = base_vocab, base_vocab + 1, base_vocab + 2
        self.vocab = base_vocab + ADDED_TOKENS

    @property
    def n_layers(self) -> int:
        return self.codi.config.num_hidden_layers

    @property
    def device(self) -> torch.device:
        return self.prj[1].weight.device

    @property
    def context(self) -> int | None:
        """The most positions the LM takes (GPT-2's ``n_positions``, else ``max_position_embeddings``);
        None when its config sets no limit."""
        return getattr(self.codi.config, "max_position_embeddings", None)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.codi.get_input_embeddings()(ids)

    def prompt(self, question: str) -> list[int]:
        """The ids ``think`` starts a question with: its tokens, then bot."""
        return self.tokenizer(question)["input_ids"] + [self.bot_id]

    def positions(self, question: str, latent_steps: int, convention: str, max_new_tokens: int) -> int:
        """The most positions ``think`` uses for ``question``: its prompt, the latents fed, eot and the
        answer tokens fed back (all but the last of ``max_new_tokens``)."""
        return len(self.prompt(question)) + _fed_steps(latent_steps, convention) + max_new_tokens

    @torch.no_grad()
    def think(self, questions: list[str], latent_steps: int, convention: str, max_new_tokens: int) -> Thoughts:
        """Run CODI on a batch of questions, recording by ``convention`` (codi_sae.extract's docstring)."""
        steps, seed = _fed_steps(latent_steps, convention), convention == "seed"
        ids = [self.prompt(q) for q in questions]
        width = max(map(len, ids))
        input_ids = torch.tensor([[self.pad_id] * (width - len(i)) + i for i in ids], device=self.device)
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids], device=self.device)
        out = self.codi(input_ids=input_ids, attention_mask=mask, position_ids=_positions(mask),
                        use_cache=True, output_hidden_states=True, logits_to_keep=1)  # no logits are read here
        states, fed = [_last(out)], []
        for _ in range(steps):  # seed: bot is the first recorded position
            fed.append(self.prj(states[-1][-1]))
            out, mask = self._step(fed[-1], mask, self._cache(out), hidden=True)
            states.append(_last(out))
        layers, recorded = (slice(0, -1), states) if seed else (slice(1, None), states[1:])
        hidden = torch.stack([torch.stack(s[layers], 1) for s in recorded], 2)  # [B, L, T, H]
        logits = self.codi.get_output_embeddings()(torch.stack([s[-1] for s in recorded], 1))
        top_probs, top_ids = torch.softmax(logits, -1).topk(TOP_TOKENS, dim=-1)
        answers = self._decode(out, mask, max_new_tokens)
        fed = torch.stack(fed, 1) if fed else hidden.new_zeros(len(ids), 0, hidden.shape[-1])
        return Thoughts(hidden.float().cpu(), fed.float().cpu(), top_ids.cpu(), top_probs.float().cpu(), answers)

    def _step(self, embeds: torch.Tensor, mask: torch.Tensor, cache, hidden: bool = False):
        """Feed one input embedding per problem [B, H] after ``cache``; ``hidden``: return every layer's state."""
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], 1)
        out = self.codi(inputs_embeds=embeds[:, None], attention_mask=mask, position_ids=_positions(mask)[:, -1:],
                        use_cache=True, output_hidden_states=hidden, **{self._cache_key: cache})
        return out, mask

    @functools.cached_property
    def _cache_key(self) -> str:
        """The KV cache's name in the LM's forward: ``cache`` since transformers 5.x, before it
        ``past_key_values`` (a deprecated alias since)."""
        forward = self.codi.get_base_model().forward if hasattr(self.codi, "get_base_model") else self.codi.forward
        return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"

    def _cache(self, out):
        return getattr(out, self._cache_key)

    def _decode(self, out, mask: torch.Tensor, max_new_tokens: int) -> list[list[int]]:
        """eot, then greedy decoding (over the vocabulary less eot, as CODI's evaluation does) until
        each problem's end-of-sequence token or ``max_new_tokens``."""
        eos = self.tokenizer.eos_token_id
        token = torch.full((len(mask),), self.eot_id, device=self.device)
        answers: list[list[int]] = [[] for _ in range(len(mask))]
        done = torch.zeros(len(mask), dtype=torch.bool, device=self.device)
        for _ in range(max_new_tokens):
            out, mask = self._step(self.embed(token), mask, self._cache(out))
            token = out.logits[:, -1, : self.vocab - 1].argmax(-1)
            for b in torch.nonzero(~done).flatten().tolist():
                answers[b].append(int(token[b]))
            done |= token == eos
            if bool(done.all()):
                break
        return answers


def _fed_steps(latent_steps: int, convention: str) -> int:
    """How many latents ``think`` feeds back: ``latent_steps``, one fewer under the seed convention."""
    if convention not in CONVENTIONS:
        raise InputError(f"convention {convention!r} is none of {CONVENTIONS}")
    return latent_steps - (convention == "seed")


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding, so a padded problem sees what it would alone."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _last(out) -> tuple[torch.Tensor, ...]:
    """Every layer's hidden state at the last input position: (L + 1) x [B, H]."""
    return tuple(h[:, -1] for h in out.hidden_states)


def load_codi(checkpoint: str | os.PathLike, base_model: str | os.PathLike, *, lora_alpha: float,
              device: torch.device) -> CodiModel:
    """The CODI model of ``checkpoint`` (a directory with ``model.safetensors`` or
    ``pytorch_model.bin``: the whole CODI state dict) over the base LM in ``base_model`` (its
    config, weights and tokenizer), in eval mode, float32.

    The LoRA rank, target modules and projection sizes are read from the checkpoint's tensors;
    ``lora_alpha`` cannot be and is given. Loading is strict: a key of the checkpoint that the
    model lacks, or a LoRA, projection or embedding key it does not provide, is an InputError.
    """
    try:
        import transformers
        from peft import get_peft_model
    except ImportError as e:
        raise InputError(f"extraction needs transformers and peft ({e}): pip install -e '.[extract]', "
                         "or run snakemake with --software-deployment-method conda") from None

    state = _read_state(Path(checkpoint))
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        lm = transformers.AutoModelForCausalLM.from_pretrained(base_model).float()  # v5 loads in the stored dtype
        tokenizer = transformers.AutoTokenizer.from_pretrained(base_model)
    except (OSError, ValueError) as e:
        raise InputError(f"{base_model}: not a readable base model ({type(e).__name__}: {first_line(e)})") from None
    base_vocab = lm.config.vocab_size
    lm.resize_token_embeddings(base_vocab + ADDED_TOKENS, mean_resizing=False)
    targets = sorted({k.split(".lora_A.")[0].rsplit(".", 1)[-1] for k in state if ".lora_A." in k})
    if targets:
        rank = next(v.shape[0] for k, v in state.items() if ".lora_A." in k)
        lm = get_peft_model(lm, _lora(lm, r=rank, lora_alpha=lora_alpha, target_modules=targets))
    model = CodiModel(lm, _projection(state, checkpoint), tokenizer, base_vocab)
    _load_strictly(model, state, checkpoint)
    return model.to(device).eval()


def _lora(lm: nn.Module, **settings):
    """LoRA settings for ``lm``; GPT-2's Conv1D layers store their weights transposed."""
    from peft import LoraConfig
    from transformers.pytorch_utils import Conv1D

    conv1d = any(isinstance(m, Conv1D) for m in lm.modules())
    return LoraConfig(lora_dropout=0.0, fan_in_fan_out=conv1d, **settings)


def _read_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    path = checkpoint_weights(checkpoint)
    if path.name == "model.safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except SafetensorError as e:
            raise InputError(f"{path}: not a readable safetensors file ({e})") from None
    if path.name == "pytorch_model.bin":
        state = load_torch(path, "CODI checkpoint", map_location="cpu")
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            return state
        raise InputError(f"{path}: not a state dict of tensors")
    raise InputError(f"{checkpoint}: no {' or '.join(WEIGHT_FILES)} (a CODI checkpoint directory)")


def _projection(state: dict, checkpoint) -> nn.Sequential:
    """CODI's projection: Dropout, Linear, GELU, Linear, LayerNorm ("ln", when the checkpoint has one)."""
    try:
        hidden_in, width = state["prj.1.weight"].shape[1], state["prj.1.weight"].shape[0]
    except KeyError:
        raise InputError(f"{checkpoint}: the checkpoint has no projection (prj.*): not a CODI checkpoint") from None
    prj = nn.Sequential(nn.Dropout(0.0), nn.Linear(hidden_in, width), nn.GELU(), nn.Linear(width, hidden_in))
    if "prj.ln.weight" in state:
        prj.add_module("ln", nn.LayerNorm(hidden_in))
    return prj


def _load_strictly(model: CodiModel, state: dict, checkpoint) -> None:
    """Load ``state``; refuse keys the model lacks, missing LoRA or projection keys, and a missing
    input embedding (the added tokens are only in the checkpoint). Other base weights may come
    from the base model; tied weights (the LM head) follow what they are tied to."""
    weight = model.codi.get_input_embeddings().weight
    embedding = next(name for name, p in model.named_parameters() if p is weight)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise InputError(f"{checkpoint}: does not fit the base model ({str(e).strip().splitlines()[-1].strip()})") from None
    missing = [k for k in result.missing_keys if ".lora_" in k or k.startswith("prj.") or k == embedding]
    if result.unexpected_keys or missing:
        raise InputError(f"{checkpoint}: the checkpoint does not match a CODI model over this base model "
                         f"(keys it lacks: {missing[:5] or 'none'}; keys the model lacks: "
                         f"{result.unexpected_keys[:5] or 'none'})")


RANDOM_ARCHITECTURES = {  # config class, model class, the projections CODI puts LoRA on
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", ["c_attn", "c_proj", "c_fc"]),
    "llama": ("LlamaConfig", "LlamaForCausalLM", ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj",
                                                  "gate_proj"]),
}


def write_random_codi(folder: str | os.PathLike, words: list[str], *, architecture: str = "gpt2", n_layer: int = 2,
                      n_embd: int = 32, n_head: int = 2, vocab_size: int | None = None, context: int = 1024,
                      lora_r: int = 4, lora_alpha: float = 8, seed: int = 0) -> tuple[Path, Path]:
    """A CODI of RANDOM weights, for tests and benchmarks (its thoughts mean nothing): a base model
    (``architecture``: gpt2 or llama, tied embeddings) with a word-level tokenizer of ``words``
    (padded with filler words to ``vocab_size``), taking ``context`` positions, in ``folder/base``,
    and a CODI checkpoint over it (non-zero LoRA on the projections CODI adapts; a projection with
    LayerNorm) in ``folder/checkpoint``. Returns (checkpoint, base)."""
    import transformers
    from peft import get_peft_model
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = Path(folder)
    eos = "<|endoftext|>"
    vocab = list(dict.fromkeys(["[UNK]", eos, *words]))
    vocab += [f"filler{i}" for i in range(max(0, (vocab_size or 0) - len(vocab)))]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=eos, unk_token="[UNK]")
    config_class, model_class, targets = RANDOM_ARCHITECTURES[architecture]
    sizes = ({"n_positions": context, "n_embd": n_embd, "n_layer": n_layer, "n_head": n_head} if architecture == "gpt2"
             else {"hidden_size": n_embd, "intermediate_size": 4 * n_embd, "num_hidden_layers": n_layer,
                   "num_attention_heads": n_head, "max_position_embeddings": context, "tie_word_embeddings": True})
    config = getattr(transformers, config_class)(vocab_size=len(vocab), bos_token_id=1, eos_token_id=1,
                                                 **sizes, **{RANDOM_MODEL_KEY: True})
    torch.manual_seed(seed)
    lm = getattr(transformers, model_class)(config)
    lm.save_pretrained(folder / "base")
    fast.save_pretrained(folder / "base")
    lm.resize_token_embeddings(len(vocab) + ADDED_TOKENS, mean_resizing=False)
    lora = _lora(lm, r=lora_r, lora_alpha=lora_alpha, target_modules=targets, init_lora_weights=False)
    prj = nn.Sequential(nn.Dropout(0.0), nn.Linear(n_embd, n_embd), nn.GELU(), nn.Linear(n_embd, n_embd))
    prj.add_module("ln", nn.LayerNorm(n_embd))
    model = CodiModel(get_peft_model(lm, lora), prj, fast, len(vocab))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("lm_head.weight")}
    (folder / "checkpoint").mkdir(parents=True, exist_ok=True)
    save_file(state, folder / "checkpoint/model.safetensors")
    return folder / "checkpoint", folder / "base"
