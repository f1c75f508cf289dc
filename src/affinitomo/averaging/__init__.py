"""Subtomogram averaging without a template: references built from the particles themselves.

- :mod:`~affinitomo.averaging.align`: each unknown group aligned to itself (:class:`~affinitomo.averaging.align.AlignedGroup`);
- :mod:`~affinitomo.averaging.regroup`: unknown particles regrouped by references of their own subgroups;
- :mod:`~affinitomo.averaging.compete`: known classes and unknown groups compete for their particles;
- :mod:`~affinitomo.averaging.poses`: each particle's final pose (match, model, group or input);
- :mod:`~affinitomo.averaging.averages`: class averages streamed from the subtomogram stack;
- :mod:`~affinitomo.averaging.references`: class references from labelled particles (``affinitomo references``);
- :mod:`~affinitomo.averaging.stage`: the average step of the cluster stage (``affinitomo average``).
"""
