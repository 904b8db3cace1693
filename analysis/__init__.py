"""The analysis room: figures, mlflow-run reading and the helpers behind the notebooks.

    analysis.plots      matplotlib figures (scikit-learn's ROC / PR / calibration / confusion displays)
    analysis.notebook   notebook settings from DETECTOR_NB_* variables, figure saving, the committed
                        data a notebook falls back to, the detector to explore
    analysis.text_view  one text: its tokens, GLTR shares, sentences and features as tables
    analysis.runs       tracked training runs read back from mlflow
    analysis.error_analysis  error analysis over a scored data set (by length, domain, generator)
    analysis.benchmark  the benchmark's results, and a small zero-shot vs trained side-by-side

Direction of imports: analysis/ may import detector/, train/ and detector_bench/. detector/ never imports
analysis/; train/ and detector_bench/ import only `analysis.plots`, to draw their figures. Length bands and
the reliable length live in `detector.decision.lengths`, GLTR buckets and colours in `detector.features.zero_shot`.
"""
