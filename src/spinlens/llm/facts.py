"""Facts and word tasks from data that install offline, with provenance (no list typed from memory).

Sources (optional extra ``spinlens[facts]``, also in ``spinlens[llm]``):

* **countryinfo** (MIT; one JSON file per country, 250 countries and territories): a country's capital,
  region and subregion, demonym, and its name in French, German, Spanish and Italian. `country_facts`
  reads the package's data files directly (``countryinfo/data/*.json``) and records the package version.
* **lemminflect** (MIT; an English inflection lexicon): the past tense and plural of English words
  (`inflection_pairs`), on words that the model's tokenizer holds as single tokens.
* rules: upper-casing a word (`uppercase_pairs`).

Relations of `country_facts`: ``capital`` (Albania → Tirana), ``continent`` (the region: Africa, Asia,
Europe, Oceania; the Americas split into South America and North America by the UN (intermediate)
region, Central America and the Caribbean counted as North America), ``demonym`` (Albania → Albanian),
``name_fr`` / ``name_de`` / ``name_es`` / ``name_it`` (the country's name in that language).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from spinlens.errors import InvalidParameterError, check_choice

__all__ = ["Fact", "RELATIONS", "TEMPLATES", "country_facts", "facts_source", "recall_task", "inflection_pairs",
           "uppercase_pairs", "source_version"]

RELATIONS = ("capital", "continent", "demonym", "name_fr", "name_de", "name_es", "name_it")

#: relation -> prompt templates (the subject fills ``{}``; the object follows with a leading space)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "capital": ("The capital of {} is", "The capital city of {} is", "{}'s capital city is called"),
    "continent": ("{} is a country in the continent of", "{} is located in the continent of",
                  "The continent where {} lies is"),
    "demonym": ("A person from {} is called", "The people of {} are called", "Someone born in {} is"),
}


@dataclass(frozen=True)
class Fact:
    """One (subject, relation, object) triple, e.g. ``("France", "capital", "Paris")``."""

    subject: str
    relation: str
    object: str


def source_version(package: str) -> str:
    """``"package VERSION"`` of an installed distribution, or a one-line error naming the install command."""
    from importlib import metadata

    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        raise InvalidParameterError(f"This study needs the package {package!r}: pip install 'spinlens[facts]' "
                                    f"(or pip install {package}).") from None


def facts_source() -> str:
    """Provenance of `country_facts`: the package, its version and licence, and the files read."""
    return f"{source_version('countryinfo')} (MIT), countryinfo/data/*.json"


def _countries() -> list[dict]:
    source_version("countryinfo")
    from importlib import resources

    rows = []
    for f in sorted(resources.files("countryinfo").joinpath("data").iterdir(), key=lambda p: p.name):
        if f.name.endswith(".json"):
            rows.append(json.loads(f.read_text(encoding="utf-8")))
    return rows


def _continent(d: dict) -> str | None:
    reg, sub = d.get("region") or "", d.get("intermediateregion") or d.get("subregion") or ""
    if reg == "Americas":
        return "South America" if sub == "South America" else "North America"
    return reg or None


def country_facts(relations=("capital",)) -> list[Fact]:
    """Facts about the countries of the countryinfo package, sorted by relation then subject.

    A country without a value for a relation (no capital, no region, no translation) gives no fact of it;
    a value equal to the subject (e.g. a city-state's capital, an unchanged translation) is left out too,
    since copying the subject would answer it.
    """
    rel = [check_choice("relation", r, RELATIONS) for r in relations]
    out = []
    for d in _countries():
        name = (d.get("name") or "").strip()
        if not name:
            continue
        for r in rel:
            if r == "capital":
                v = d.get("capital")
            elif r == "continent":
                v = _continent(d)
            elif r == "demonym":
                v = d.get("demonym")
            else:
                v = (d.get("translations") or {}).get(r.split("_")[1])
            if isinstance(v, list):  # several values (e.g. capitals): ambiguous, left out unless one
                v = v[0] if len(v) == 1 else None
            v = (v or "").strip() if isinstance(v, str) or v is None else ""
            if v and v != name:
                out.append(Fact(name, r, v))
    return sorted(set(out), key=lambda f: (rel.index(f.relation), f.subject))


def recall_task(facts: list[Fact], *, templates: dict | None = None, name: str = "recall"):
    """A `spinlens.llm.tasks.TextTask` with one prompt per (fact, template): ``"The capital of France is"`` →
    ``" Paris"``; meta ``subject``, ``relation``, ``template``; source: `facts_source`."""
    from spinlens.llm.tasks import TextTask

    templates = TEMPLATES if templates is None else templates
    prompts, answers, subj, rels, tids = [], [], [], [], []
    for f in facts:
        if f.relation not in templates:
            raise InvalidParameterError(f"The 'relation' {f.relation!r} has no prompt template; templates exist for "
                                        f"{sorted(templates)}.")
        for k, t in enumerate(templates[f.relation]):
            prompts.append(t.format(f.subject))
            answers.append(" " + f.object)
            subj.append(f.subject)
            rels.append(f.relation)
            tids.append(k)
    if not prompts:
        raise InvalidParameterError("The 'facts' parameter must hold at least one fact.")
    return TextTask(name, prompts, answers, meta={"subject": subj, "relation": rels, "template": tids},
                    source=facts_source())


def _single(tokenizer, word: str) -> bool:
    return len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1


def inflection_pairs(tokenizer, kind: str, *, max_words: int = 300) -> dict[str, str]:
    """``{word: inflected}`` from lemminflect for ``kind`` ``"past"`` (verb lemma → past tense, VBD) or
    ``"plural"`` (noun → plural, NNS): lower-case alphabetic lemmas of lemminflect's lexicon whose base and
    inflected forms (with a leading space) are each one token of ``tokenizer`` and differ; in the order of
    the tokenizer's ids (BPE merge order, frequent words first), at most ``max_words``."""
    check_choice("kind", kind, ("past", "plural"))
    source_version("lemminflect")
    import lemminflect

    upos, tag = ("VERB", "VBD") if kind == "past" else ("NOUN", "NNS")
    out = {}
    seen = set()
    # candidates: the tokenizer's word tokens with a leading space, by token id (BPE merge order: frequent first)
    for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        s = tokenizer.convert_tokens_to_string([t])
        w = s.strip()
        if (not s.startswith(" ") or w in seen or not (w.isascii() and w.isalpha() and w.islower() and len(w) >= 3)
                or not _single(tokenizer, w)):
            continue
        seen.add(w)
        lemmas = lemminflect.getAllLemmas(w, upos=upos).get(upos, ())
        if w not in lemmas:
            continue
        forms = lemminflect.getInflection(w, tag=tag, inflect_oov=False)
        if not forms or forms[0] == w or not _single(tokenizer, forms[0]):
            continue
        out[w] = forms[0]
        if len(out) == max_words:
            break
    return out


def uppercase_pairs(words) -> dict[str, str]:
    """``{word: WORD}`` (a rule; the words come from another task's inputs)."""
    return {w: w.upper() for w in words if w.upper() != w}
