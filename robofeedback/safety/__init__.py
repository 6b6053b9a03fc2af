"""Safe MPC from human directional feedback: a barrier MPC with a learnable constraint, the cutting-plane learner,
and the alignment loop with simulated, terminal or app humans (the games are ``safety:<game>`` envs)."""
