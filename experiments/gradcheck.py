"""The notebook's cell [3]: check the three-layer convnet's gradients numerically.

    model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=(3, 16, 16),
                              hidden_dim=7, dtype=np.float64)
    loss, grads = model.loss(X, y)    # X: 2 random inputs, y: random labels, reg 0
    for param_name in sorted(grads):
        param_grad_num = eval_numerical_gradient(f, model.params[param_name], h=1e-6)
        print('{} max relative error: {}'.format(param_name, rel_error(...)))

Three runs, all with seed 12 so that only the weight scale differs: the cell verbatim
(weight scale 1e-3, where rounding puts some numerical errors above the notebook's
1e-5, as the notebook's own W3 = 2.8e-4 shows), the cell with weight scale 1e-2
(every gradient above the rounding floor), and that with batchnorm. Each prints the
notebook's lines and the table autocnn vs numerical, reference vs numerical, autocnn vs
reference; metrics.json keeps every number and gradcheck.png shows them.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Sequence

from autocnn.tools.gradcheck import EXACT_TOLERANCE, format_gradcheck, notebook_gradient_check
from autocnn.tools.provenance import git_state, machine_info
from experiments.common import parse_args

NAME = "gradcheck"
SEED = 12
RUNS = (
    ("cell [3] verbatim: weight scale 1e-3", dict(weight_scale=1e-3)),
    ("weight scale 1e-2", dict(weight_scale=1e-2)),
    ("weight scale 1e-2, batchnorm", dict(weight_scale=1e-2, use_batchnorm=True)),
)
#: Smoke: the same code on a 3x4x4 input, 1 filter and a hidden layer of 2 (about a second).
SMOKE_SIZES = dict(input_dim=(3, 4, 4), num_filters=1, hidden_dim=2)


def main(argv: Sequence[str] | None = None) -> int:
    from autocnn.tools import plots

    args = parse_args(NAME, __doc__.splitlines()[0], argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = io.StringIO()
    results = []
    seed = args.seed if args.seed is not None else SEED
    for label, settings in RUNS:
        result = notebook_gradient_check(**settings, seed=seed, **(SMOKE_SIZES if args.smoke else {}))
        text = f"== {label}\n{format_gradcheck(result)}\n"
        print(text)
        log.write(text + "\n")
        results.append((label, result))
    (args.out / "gradcheck.log").write_text(log.getvalue(), encoding="utf-8")

    verbatim, scaled = results[0][1], results[1][1]
    names = [row.name for row in verbatim.rows]
    plots.plot_gradcheck(
        [(f"autocnn vs numerical, {label}", names, [row.autocnn_vs_numerical for row in result.rows])
         for label, result in results[:2]],
        tolerances=[row.tolerance for row in verbatim.rows], path=args.out / "gradcheck.png",
        exact=("autocnn vs reference (exact)", [row.autocnn_vs_reference for row in scaled.rows], EXACT_TOLERANCE),
        title=f"Notebook cell [3]: relative gradient errors of ThreeLayerConvNet (seed {seed})")
    metrics = {"experiment": NAME, "smoke": args.smoke,
               "runs": [dict(label=label, **result.to_dict()) for label, result in results],
               "wall_time_s": round(time.perf_counter() - started, 3), "machine": machine_info(), **git_state(),
               "files": {"log": "gradcheck.log", "plot": "gradcheck.png", "metrics": "metrics.json"}}
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    agree = all(result.gradients_agree for _, result in results)
    print(f"wrote gradcheck.log, gradcheck.png, metrics.json to {args.out}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
