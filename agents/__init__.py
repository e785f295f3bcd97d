"""rlstm agents: trainers that learn Gymnasium tasks with LSTM policies, without labels."""
