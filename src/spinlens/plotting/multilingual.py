"""Figure of the language-specific neurons study (`spinlens.llm.multilingual`)."""

from __future__ import annotations

import numpy as np

from spinlens.plotting.style import DIVERGING_CMAP, SEQUENTIAL_CMAP, new_figure
from spinlens.verdict import mean_sd


def _heat(ax, fig, m, langs, *, title, xlabel, ylabel, cbar, cmap, vmin, vmax, fmt="{:.2f}"):
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label(cbar)


def plot_language_neurons(result):
    """Four panels from a `LanguageNeuronsResult`: neurons per layer and language; the held-out loss change
    from switching each language's neurons off, and from random neurons of the same count (mean over seeds);
    the rate at which continuations switch to the target language when its neurons are switched on.

    Returns
    -------
    (fig, axes)
    """
    langs = list(result.languages)
    fig, axes = new_figure(ncols=4, figsize=(17, 3.8))
    ax = axes[0]
    layers = np.arange(result.mask.shape[1])
    for i, c in enumerate(langs):
        ax.plot(layers, result.mask[i].sum(1), marker="o", label=c)
    ax.set_xlabel("layer")
    ax.set_ylabel("language-specific neurons")
    ax.set_title("(a) where they sit")
    ax.legend(fontsize=7, ncol=2)
    d = result.delta_loss
    rd = result.random_delta_loss.mean(0)
    lim = float(max(np.abs(d).max(), np.abs(rd).max(), 1e-6))
    _heat(axes[1], fig, d, langs, title="(b) language neurons off", xlabel="evaluated language",
          ylabel="neurons switched off", cbar="Δ loss (nats/token)", cmap=DIVERGING_CMAP, vmin=-lim, vmax=lim)
    _heat(axes[2], fig, rd, langs, title=f"(c) random neurons off ({result.random_off_loss.shape[0]} seeds)",
          xlabel="evaluated language", ylabel="same count as", cbar="Δ loss (nats/token)", cmap=DIVERGING_CMAP,
          vmin=-lim, vmax=lim)
    n = len(langs)
    off = ~np.eye(n, dtype=bool)
    _heat(axes[3], fig, result.switch_rate, langs,
          title=f"(d) neurons on: switch rate\n(none {result.switch_base[off].mean():.2f}, "
                f"random {result.switch_random[:, off].mean():.2f})",
          xlabel="target language (neurons on)", ylabel="prompt language", cbar="fraction in target language",
          cmap=SEQUENTIAL_CMAP, vmin=0.0, vmax=1.0)
    fig.tight_layout()
    return fig, axes


def plot_language_control(result, effect_level: float = 0.5):
    """Two panels from a `ControlResult`: switch rate against strength for each method (mean ± sd over seeds),
    and cost (Δ held-out loss of target-language text) against switch rate — methods compare at equal effect.

    Returns
    -------
    (fig, axes)
    """
    fig, axes = new_figure(ncols=2, figsize=(10, 3.8))
    methods = list(dict.fromkeys(r["method"] for r in result.rows))
    for m in methods:
        st, eff, cost = result.table(m)
        e, c = np.nanmean(eff, 0), np.nanmean(cost, 0)
        es = mean_sd(eff, axis=0, skipna=True)[1]
        axes[0].errorbar(np.arange(st.size), e, yerr=es, marker="o", capsize=2, label=m)
        axes[1].plot(e, c, marker="o", label=m)
    base = float(np.mean([b["switch_rate"] for b in result.base]))
    axes[0].axhline(base, color="0.5", ls=":", label="no intervention")
    axes[0].set_xlabel("strength (index into each method's sweep)")
    axes[0].set_ylabel(f"switch rate {result.source}→{result.target}")
    axes[0].set_title("(a) effect")
    axes[0].legend(fontsize=7)
    axes[1].axvline(effect_level, color="0.5", ls=":", label=f"equal effect {effect_level:g}")
    axes[1].set_xlabel(f"switch rate {result.source}→{result.target}")
    axes[1].set_ylabel(f"Δ loss on held-out {result.target} text (nats/token)")
    axes[1].set_title("(b) cost against effect (mean over seeds)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig, axes
