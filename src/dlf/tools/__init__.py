"""Tools on top of runs: dlf-compare (compare, events: sweep.csv/md/png and the TensorBoard event files), the sweep
summary written at the end of every multirun (summary), dlf-generate (generate: GAN samples) and dlf-sample (sample:
text from a language model). They read run dirs and checkpoints through dlf.run; nothing below imports them."""
