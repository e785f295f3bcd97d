/* The avx512 kernels (see _rlk_body.h); setup.py compiles this file with the level's flags. */
#define RL_LEVEL_AVX512 1
#define RL_LEVEL_NAME "avx512"
#define RL_TABLE rl_table_avx512
#include "_rlk_level.h"
