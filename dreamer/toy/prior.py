"""The toy prior: the score of a Gaussian mixture centred on the reference renders.

For x_t = a_t x0 + s_t eps and mixture weights w_i, the posterior over references is
r_i = softmax_i(log w_i - |x_t - a_t x_i|^2 / (2 s_t^2)); the denoised estimate is
D = sum_i r_i x_i and the noise prediction is eps_hat = (x_t - a_t D) / s_t. Distances are
computed in float64 (at small t the logits divide by s_t^2 ~ 0.02, so float32 is not enough).

Two worlds (prior.world):
- exact: the above, the exact score of the mixture. At 64x64 its posterior is one-hot as soon as a
  render is nearer one reference than the rest, so classifier-free guidance vanishes once a shape
  forms and view words hardly matter: it does not behave like a real prior.
- realistic: the references are weighed on a coarse view of x_t, P x_t (average pooling to R x R,
  scaled so that P keeps the noise at unit variance), as if the noise were sqrt(T) times larger:
      r_i = softmax_i(log w_i - |P x_t - a_t P x_i|^2 / (2 T s_t^2)),
  with D and eps_hat as above. For T = 1 this is the exact posterior of the mixture given P x_t
  only; T > 1 spreads it further. It is no longer the score of one distribution: it is a denoiser
  that, like a model which generalizes, blends many references whose coarse look matches (front
  views outnumber back views 4 to 1 in the references, so a back view is pulled towards fronts)
  and keeps a conditional term at every t. Same references, same ground truth, and cheaper than
  the exact weighing (R^2 instead of 64^2 dimensions). It also leans to the front, as photo
  collections do beyond our references' sampling: within each group of references the prompt
  weighs (the object's, or those with and without the asked view label), reference i's weight
  is proportional to exp(front_lean * cos(azimuth_i)).

  With view_blind = b > 0 (realistic world only), the weights are (1 - b) r + b softmax(log w):
  a share b of the estimate is the prompt's mean reference whatever x_t shows, as an under-fit
  model regresses to the mean; with the front lean that mean shows the front, from every side.

  With lean_empty_prompt = false, the empty prompt (the unconditional branch) weighs the references
  as sampled, already half within 45 degrees of the front, and only a prompt naming an object leans:
  the lean is then the captions' bias, so the classifier-free direction (prompt minus empty) carries
  the front's look at every view, as a real prior's does.

  With view_odds = b > 0 (realistic world only), a view suffix multiplies the odds of the object's
  references with its label by e^b instead of moving view_fidelity of the mass onto them, so a
  strong front lean can outweigh a "back view" suffix, as a real prior's photo bias outweighs its
  loosely learned view words: with lean 3 and b = 1 a back reference still weighs e^-5 of a front one.

  With weigh_on = silhouette (realistic world only), each reference is weighed by its silhouette
  filled with its object's mean colour (over all its references' covered pixels) instead of its own
  image: two views with one outline (a penguin's front and back) weigh the same whatever x_t's
  colours, and the prompt's weights (the front lean) choose between them, as a real prior at mid
  noise sees the shape and draws what the object usually shows. The estimate still blends the full
  references.

  With local_window = k > 0 (realistic world only), below the timestep local_below each pixel p has
  its own posterior, weighed on the k x k window around it (at full resolution, noise scaled by
  local_temperature T_l): r_i(p) = softmax_i(log w_i - |x_t - a_t x_i|^2_window(p) / (2 T_l s_t^2)),
  and D(p) = sum_i r_i(p) x_i(p). A convolutional denoiser sees a window, not the image, at low
  noise: it can compose parts of different references (a face from a front view on a back view's
  outline) that one weighing per image must take or leave together. Candidates are the 256
  references nearest on the coarse view (the cost: all 2,000 at every pixel is 10x slower);
  view_blind does not apply to the local estimate.

Conditioning is a log-weight vector over references: the prompt picks an object, a view suffix
moves `view_fidelity` of that object's mass onto references with the matching label (or, with
view_odds, multiplies their odds), and the empty prompt is the uniform mixture over objects.
"""
from __future__ import annotations

import math

import torch

from ..cameras import VIEW_LABELS
from ..priors.base import Prior, sd_alphas_cumprod
from .catalogue import Catalogue
from .fake_score import ResidualFakeScore
from .references import load_references


class ToyPrior(Prior):
    space = "pixel"
    channels = 3

    def __init__(self, catalogue: Catalogue | None = None, resolution: int = 64,
                 refs_per_object: int = 200, view_fidelity: float | str = 0.7, progress=None,
                 chunk: int = 8, world: str = "exact", posterior_resolution: int = 8,
                 posterior_temperature: float = 64.0, front_lean: float = 0.0, view_blind: float = 0.0,
                 weigh_on: str = "image", view_odds: float = 0.0, lean_empty_prompt: bool = True,
                 local_window: int = 0, local_below: int = 0, local_temperature: float = 1.0):
        self.catalogue = catalogue or Catalogue()
        if view_fidelity == "auto":  # real priors follow view words loosely
            view_fidelity = 0.3 if world == "realistic" else 0.7
        self.resolution, self.view_fidelity, self.chunk = resolution, float(view_fidelity), chunk
        self.alphas_cumprod = sd_alphas_cumprod().float()
        self.refs = load_references(self.catalogue, refs_per_object, resolution, progress)
        flat = self.refs.images.reshape(len(self.refs.images), -1)
        self._refs64 = flat.double()
        if world not in ("exact", "realistic"):
            raise ValueError(f"unknown toy world {world}")
        if weigh_on not in ("image", "silhouette"):
            raise ValueError(f"unknown weighing {weigh_on}")
        if resolution % posterior_resolution:
            raise ValueError(f"posterior_resolution {posterior_resolution} must divide {resolution}")
        self.world = world
        # Within each group of references, weights exp(lean * cos(azimuth)) (all 1 in the exact world).
        lean = front_lean if world == "realistic" else 0.0
        self._lean = torch.exp(lean * torch.cos(torch.deg2rad(self.refs.azimuth.double())))
        self.weighing_resolution = resolution if world == "exact" else posterior_resolution
        self.temperature = 1.0 if world == "exact" else float(posterior_temperature)
        self.view_blind = float(view_blind) if world == "realistic" else 0.0
        self.weigh_on = weigh_on if world == "realistic" else "image"
        self.view_odds = float(view_odds) if world == "realistic" else 0.0
        self.lean_empty_prompt = bool(lean_empty_prompt)
        on = world == "realistic" and local_window > 0
        self.local_window, self.local_below = (int(local_window), int(local_below)) if on else (0, 0)
        self.local_temperature, self.local_candidates = float(local_temperature), 256
        weighed = silhouettes(self.refs) if self.weigh_on == "silhouette" else self.refs.images.double()
        coarse = self.weighing_resolution != resolution or self.weigh_on != "image"
        self._weighed_refs = self.coarse(weighed) if coarse else self._refs64  # no copy
        self._sq_norms = (self._weighed_refs ** 2).sum(-1)

    # -- conditioning ------------------------------------------------------------------------

    def check_prompt(self, prompt: str) -> None:
        self.catalogue.resolve(prompt)

    def log_weights(self, prompt: str) -> torch.Tensor:
        obj, label = self.catalogue.resolve(prompt)
        ids, labels = self.refs.object_ids, self.refs.labels
        n_obj = len(self.catalogue.objects)
        mass = torch.zeros(len(ids), dtype=torch.float64)
        objects = range(n_obj) if obj is None else [obj]
        # The empty prompt weighs the references as sampled unless lean_empty_prompt: the lean is the
        # captions' bias (a photo captioned "a penguin" shows its front), not the images'.
        lean = self._lean if obj is not None or self.lean_empty_prompt else torch.ones_like(self._lean)
        for o in objects:
            in_obj = ids == o
            mass[in_obj] = self._object_mass(lean[in_obj], labels[in_obj], label) / len(objects)
        return torch.where(mass > 0, mass.log(), torch.full_like(mass, -math.inf)).float()

    def _object_mass(self, lean: torch.Tensor, labels: torch.Tensor, label: str | None) -> torch.Tensor:
        """One object's references' weights (summing to 1) under a view label (None: no suffix)."""
        if label is None:
            return lean / lean.sum()
        match = labels == VIEW_LABELS.index(label)
        if self.view_odds:  # the label's odds times e^odds, against the lean
            weight = lean * torch.where(match, math.exp(self.view_odds), 1.0)
            return weight / weight.sum()
        if not match.any() or match.all():  # nothing to reweight
            return lean / lean.sum()
        fidelity = self.view_fidelity
        return torch.where(match, fidelity * lean / lean[match].sum(), (1 - fidelity) * lean / lean[~match].sum())

    def embed(self, prompts: list[str]) -> torch.Tensor:
        return torch.stack([self.log_weights(p) for p in prompts])

    # -- images ------------------------------------------------------------------------------

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2)
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = torch.nn.functional.interpolate(x, (self.resolution, self.resolution), mode="bilinear",
                                                align_corners=False, antialias=True)
        return x * 2 - 1

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)

    def make_fake_score(self, cfg):
        return ResidualFakeScore(self, width=cfg.width)

    # -- the exact score ---------------------------------------------------------------------

    def posterior(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Posterior weights r (B, N) over references."""
        return torch.softmax(self.posterior_logits(x_t, t, emb), dim=-1)

    def posterior_logits(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The posterior's log-weights (B, N) over references, up to a constant per row."""
        abar = self.alphas_cumprod.double()[t.long().cpu()]
        a, s2 = abar.sqrt()[:, None], (1 - abar)[:, None] * self.temperature
        x = self.coarse(x_t.detach().double().cpu())
        d2 = (x * x).sum(-1, keepdim=True) - 2 * a * (x @ self._weighed_refs.T) + a * a * self._sq_norms[None]
        return emb.double().cpu() - d2 / (2 * s2)

    def coarse(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, R, R) -> (B, C * r * r): the view the references are weighed on. Average pooling by
        k, times k, so unit-variance noise stays unit variance (k = 1: x itself, flattened)."""
        k = x.shape[-1] // self.weighing_resolution
        if k > 1:
            x = torch.nn.functional.avg_pool2d(x, k) * k
        return x.reshape(x.shape[0], -1)

    def denoise(self, x_t, t, emb) -> torch.Tensor:
        """E[x0 | x_t] under the mixture (B, C, R, R)."""
        outs = []
        for i in range(0, x_t.shape[0], self.chunk):
            logits = self.posterior_logits(x_t[i:i + self.chunk], t[i:i + self.chunk], emb[i:i + self.chunk])
            r = torch.softmax(logits, dim=-1)
            if self.view_blind:  # a share of the estimate ignores x_t: the prompt's mean reference
                r = (1 - self.view_blind) * r + self.view_blind * torch.softmax(emb[i:i + self.chunk].double().cpu(), -1)
            d = r @ self._refs64
            if self.local_window:  # below local_below, each pixel's own weighing replaces the coarse one
                low = (t[i:i + self.chunk].long().cpu() < self.local_below).nonzero().flatten().tolist()
                for b in low:
                    # only the references the coarse view finds most plausible are candidates (cost)
                    near = logits[b].topk(min(self.local_candidates, int(logits[b].isfinite().sum()))).indices
                    d[b] = self.local_denoise(x_t[i + b], int(t[i + b]), emb[i + b], near).flatten().double()
            outs.append(d)
        return torch.cat(outs).reshape(x_t.shape).to(x_t)

    def local_denoise(self, x_t, t: int, emb, near) -> torch.Tensor:
        """E[x0 | x_t] (C, R, R) with each pixel's posterior over the references `near` weighed on the
        k x k window around it: r_i(p) = softmax_i(log w_i - |x_t - a x_i|^2_window(p) / (2 T s^2)), the
        window's squared distance being its mean over the part inside the image times k^2."""
        abar = float(self.alphas_cumprod[t])
        a, s2 = abar ** 0.5, (1 - abar) * self.local_temperature
        refs, lw = self.refs.images[near].float(), emb.cpu()[near].float()
        k = self.local_window
        d = ((x_t.detach().float().cpu()[None] - a * refs) ** 2).sum(1, keepdim=True)
        pool = torch.nn.functional.avg_pool2d  # a box is separable: rows, then columns (k + k adds, not k^2)
        d = pool(pool(d, (k, 1), 1, (k // 2, 0), count_include_pad=False), (1, k), 1, (0, k // 2),
                 count_include_pad=False) * (k * k)
        r = torch.softmax(lw[:, None, None] - d[:, 0] / (2 * s2), dim=0)
        return (r[:, None] * refs).sum(0)

    @torch.no_grad()
    def predict_noise(self, x_t, t, emb) -> torch.Tensor:
        abar = self.alphas_cumprod.to(x_t.device)[t.long()].reshape(-1, 1, 1, 1)
        d = self.denoise(x_t, t, emb)
        return (x_t - abar.sqrt() * d) / (1 - abar).sqrt()


def silhouettes(refs) -> torch.Tensor:
    """(N, 3, R, R) in [-1, 1]: each reference's silhouette (its coverage) filled with its object's
    mean colour over every covered pixel of its references, on the white background."""
    images, cover = refs.images.double(), refs.coverage.double()[:, None]
    out = torch.empty_like(images)
    for obj in refs.object_ids.unique():
        mine = refs.object_ids == obj
        colour = (images[mine] * cover[mine]).sum((0, 2, 3)) / cover[mine].sum().clamp_min(1e-12)
        out[mine] = cover[mine] * colour[None, :, None, None] + (1 - cover[mine])  # white is +1
    return out
