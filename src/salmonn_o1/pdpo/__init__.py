"""Process DPO (pDPO) with contrastive step selection, as inspectable stages.

    rollout  P sampled reasoning paths per question; keep questions answered wrong at least once
    select   per-step KL(real || perturbed media) scores; pick the top-T steps (or all, or random ones)
    label    at each selected step: one alternative step, N completions from each, their values
    pairs    step pairs (hard or soft labels) + full-path pairs, with reference log-probs
    train    `DPOObjective` in the shared training engine

Modules: steps (a path's step segments and their token spans), perturb (media
perturbations), media (rebuilding a question's features from a record), judge
(is an answer correct), rollout, scoring (KL step scores + selection), values
(alternative steps and rollout values), pairs (records + labels), loss (DPO),
objective (the training engine's view), stages (the resumable JSONL stages the
CLI runs), costs (generated tokens and forward passes), toy (a step-writing
random model for tests and benchmarks). See docs/pdpo.md.
"""
