"""An SAE's defining settings: dictionary size, K and the training recipe, without torch.

The Snakefile reads this module at parse time to check the config and to name the sweep's
files. A recipe is a preset of named switches; ``sae:`` in the config picks one and may
override any switch:

- ``decoder_bias``: ``linear``, initialised as ``nn.Linear`` does (the seed); or ``mean``,
  initialised to the training mean and subtracted from the input before the encoder (Gao et
  al. 2024's ``b_pre``; sparsify's and dictionary_learning's ``b_dec``);
- ``activation``: ``signed_topk``, the K pre-activations of largest magnitude with their signs
  (the seed); or ``relu_topk``, the K largest positive ones (Gao et al. sec. 2.3);
- ``encoder_init``: ``linear`` (the seed); or ``decoder_transpose``, the encoder starts as the
  decoder's transpose with a zero bias (Gao et al. sec. 2.4);
- ``decoder_norm``: ``init``, unit-norm decoder columns at initialisation only (the seed); or
  ``every_step``, the gradient's component along each column is removed before every step and
  the columns are renormalised after it (Gao et al.; sparsify, SAELens);
- ``auxk_coef``, ``k_aux``, ``dead_after_rows``: the AuxK loss (Gao et al. sec. 2.4 and A.2): the
  ``k_aux`` (null: H/2) largest activations of the dead latents, those that fired on none of the
  last ``dead_after_rows`` training rows, reconstruct the main model's residual; that loss,
  scaled down while fewer than ``k_aux`` latents are dead, is added with weight ``auxk_coef``
  (0 turns it off);
- ``input_scaling``: ``none`` (the seed); or ``unit_variance``, one scalar per site, from the
  training rows, so that the centred inputs' mean squared norm is H (after Gao et al.). The
  scale and the pre-encoder bias are folded into the saved weights, so every checkpoint takes
  raw activations;
- ``site_init``: ``shared``, every site starts from the weights ``train.seed`` draws (the seed);
  or ``per_site``, each site from its own seed, drawn from ``train.seed``, its position and its
  layer, so that the sites' dictionaries are independent and comparing them (cross-layer
  analysis) measures what training found, not a common start. Not from Gao et al.: a choice of
  experimental design.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import InputError

CHOICES = {
    "decoder_bias": ("linear", "mean"),
    "activation": ("signed_topk", "relu_topk"),
    "encoder_init": ("linear", "decoder_transpose"),
    "decoder_norm": ("init", "every_step"),
    "input_scaling": ("none", "unit_variance"),
    "site_init": ("shared", "per_site"),
}
RECIPES = {
    "seed": {"decoder_bias": "linear", "activation": "signed_topk", "encoder_init": "linear",
             "decoder_norm": "init", "auxk_coef": 0.0, "k_aux": None, "dead_after_rows": 1000,
             "input_scaling": "none", "site_init": "shared"},
    "topk": {"decoder_bias": "mean", "activation": "relu_topk", "encoder_init": "decoder_transpose",
             "decoder_norm": "every_step", "auxk_coef": 1 / 32, "k_aux": None, "dead_after_rows": 1000,
             "input_scaling": "unit_variance", "site_init": "per_site"},
}


@dataclass(frozen=True)
class Recipe:
    """A recipe's name and the value of every switch (see the module's docstring)."""

    name: str = "seed"
    decoder_bias: str = "linear"
    activation: str = "signed_topk"
    encoder_init: str = "linear"
    decoder_norm: str = "init"
    auxk_coef: float = 0.0
    k_aux: int | None = None
    dead_after_rows: int = 1000
    input_scaling: str = "none"
    site_init: str = "shared"

    def __post_init__(self):
        for switch, allowed in CHOICES.items():
            if getattr(self, switch) not in allowed:
                raise InputError(f"sae.{switch} must be one of {', '.join(allowed)}, not {getattr(self, switch)!r}")

    def as_dict(self) -> dict:
        """``{"recipe": name, switch: value, ...}``, as checkpoints' configs record it."""
        switches = asdict(self)
        return {"recipe": switches.pop("name"), **switches}

    @classmethod
    def from_dict(cls, switches: dict) -> "Recipe":
        """The recipe ``as_dict`` wrote."""
        return cls(name=switches["recipe"], **{k: v for k, v in switches.items() if k != "recipe"})


def make_recipe(name: str, overrides: dict | None = None) -> Recipe:
    """Recipe ``name``'s preset with the switches in ``overrides`` (the config's ``sae:``) changed."""
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    switches = {k: v for k, v in (overrides or {}).items() if k != "recipe"}
    return Recipe(name=name, **{**RECIPES[name], **switches})


def check_k(latent_dim: int, k: int, where: str = "") -> None:
    """K must be in 1..d; the message starts with ``where`` (e.g. ``"sweep.configs: "``)."""
    if k < 1:
        raise InputError(f"{where}k={k} must be at least 1")
    if k > latent_dim:
        raise InputError(f"{where}k={k} is larger than d={latent_dim}")


def entry_recipe(entry: dict, sae: dict) -> str:
    """The recipe of a sweep entry or ``sites.config``: its own, else the config's ``sae.recipe``."""
    return entry.get("recipe") or sae.get("recipe", "seed")


def sae_job(entry: dict, sae: dict) -> dict:
    """What a training job builds for a sweep entry or the sites: ``{"d", "k", "recipe": every
    switch}`` (a rerun trigger: changing any switch reruns the job)."""
    return {"d": entry["d"], "k": entry["k"], "recipe": make_recipe(entry_recipe(entry, sae), sae).as_dict()}


def entry_train(entry: dict) -> dict:
    """The train settings a sweep entry (or the sweet spot it became) sets itself: its epochs."""
    return {"epochs": entry["epochs"]} if entry.get("epochs") is not None else {}


def entry_name(entry: dict, sae: dict) -> str:
    """File stem of a sweep entry: ``d512_k150``, plus ``_topk`` for another recipe than the
    seed's and ``_e100`` when the entry sets its own epochs."""
    name = f"d{entry['d']}_k{entry['k']}"
    recipe = entry_recipe(entry, sae)
    if recipe != "seed":
        name += f"_{recipe}"
    if entry.get("epochs") is not None:
        name += f"_e{entry['epochs']}"
    return name
