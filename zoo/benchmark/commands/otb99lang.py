"""``zoo benchmark otb99lang``: run a language tracker (Models I, II, III of Li et al., CVPR 2017) on
OTB99-lang and score it."""

from __future__ import annotations

from collections.abc import Sequence

from zoo.benchmark.commands.otb import as_benchmarked_tracker, build_model, run_tracker, tracker_parser

DESCRIPTION = "run a language tracker on OTB99-lang and score it"


def main(argv: Sequence[str]) -> int:
    p = tracker_parser("otb99lang", "Benchmark a language tracker on OTB99-lang: Model I from a lingual checkpoint, "
                       "or Model II/III from a visual network (--model/--checkpoint) and --lingual.")
    p.add_argument("--split", default="test", choices=["train", "test"], help="OTB99-lang split")
    p.add_argument("--lingual", metavar="CKPT", help="a lingual network checkpoint that, with the visual network "
                   "(--model/--checkpoint), makes Model II or III")
    p.add_argument("--lang-model", default="II", choices=["II", "III"], help="with --lingual: Model II (the sentence "
                   "gives the first box) or III (the lingual response mixed in every frame)")
    a = p.parse_args(argv)
    if not a.root:
        p.error("running a tracker needs --root (the OTB99-lang dataset)")
    model, source = build_model(p, a)
    if a.lingual:
        import zoo
        from zoo.hub import sha256sum
        from zoo.lang_tracker import LanguageTracking, VisualSpecification

        if not isinstance(model, VisualSpecification):
            p.error("--lingual needs a visual specification network as --model or --checkpoint")
        lingual = zoo.load(checkpoint_path=a.lingual)
        lingual = lingual.lingual if isinstance(lingual, LanguageTracking) else lingual
        if a.lang_model == "III" and getattr(lingual, "attention", None) is None:
            p.error("--lang-model III needs a lingual network trained with word attention (attention: true)")
        model = LanguageTracking.from_networks(a.lang_model, lingual, model)
        source = {**source, "lingual_sha256": sha256sum(a.lingual), "lang_model": a.lang_model}
    elif a.lang_model != "II":
        p.error("--lang-model needs --lingual (a lingual network checkpoint)")
    return run_tracker(p, a, "otb99lang", as_benchmarked_tracker(p, a, model), {**source, "flow": a.flow})
