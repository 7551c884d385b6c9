"""GRPO (group-relative policy optimisation) beside pDPO, on the shared training engine.

    loss       TRL's clipped GRPO objective, group advantages and the k3 KL, as pure functions
    rewards    the pDPO judge's verdict + an optional format reward
    objective  `GRPOObjective`: sample G paths per question (the pipeline's decoder), reward, score
    pipeline   `train grpo`: the recipe's model, planned questions, the Trainer

The settings are `salmonn_o1.train.recipe.GRPOSettings`, a recipe's `grpo:` section. See docs/grpo.md.
"""
