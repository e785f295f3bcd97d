/* The generic kernels (see _rlk_body.h); setup.py compiles this file with the level's flags. */
#define RL_LEVEL_GENERIC 1
#define RL_LEVEL_NAME "generic"
#define RL_TABLE rl_table_generic
#include "_rlk_level.h"
