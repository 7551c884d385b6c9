"""Process DPO (pDPO) with contrastive step selection, as inspectable stages.

    rollout  P sampled reasoning paths per question; keep questions answered wrong at least once
    select   per-step KL(real || perturbed media) scores; pick the top-T steps (or all, or random ones)
    label    at each selected step: one alternative step, N completions from each, their values
    pairs    step pairs (hard or soft labels) + full-path pairs, with reference log-probs
    train    `DPOObjective` in the shared training engine

Each stage's module holds its logic, its typed record and its resumable
runner: rollout (`run_rollout`), select (`run_select`), label (`run_label`),
pairing (`run_pairs`). Around them: questions (the question type and its
sources), media (rebuilding a question's features from a record), folder (a
stage folder's files, recorded settings and summaries), steps (a path's step
segments and their token spans), perturb (media perturbations), judge (is an
answer correct), scoring (KL step scores + selection), values (alternative
steps and rollout values), pairs (pair records, labels, token ids), loss
(DPO), objective (the training engine's view), pipeline (`train pdpo`: the
stages, then training), costs (generated tokens and forward passes), toy (a
step-writing random model for tests and benchmarks). The settings are
`salmonn_o1.train.recipe.PDPOSettings`, a recipe's `pdpo:` section. See
docs/pdpo.md.
"""
