"""Adapters that put execrl's sandbox behind other RL frameworks' reward interfaces.

- `verl`: `compute_score(data_source, solution_str, ground_truth, extra_info)` and its batched
  form, for verl's `custom_reward_function`;
- `openrlhf`: `execrl reward-server`, a remote reward server in OpenRLHF's `--remote_rm_url`
  protocol.

TRL needs no adapter: `execrl.rewards.execution.ExecutionReward` has its reward signature.
See docs/integrations.md.
"""
