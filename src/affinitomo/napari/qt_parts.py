"""Qt pieces the review's widgets share: buttons, and the legends' icons (a group's symbol in its colour,
an average's central slice)."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap, QPolygonF
from qtpy.QtWidgets import QPushButton

from affinitomo.napari.contrast import contrast_limits

SWATCH = 16
THUMB = 36


def button(text: str, slot, tooltip: str = "") -> QPushButton:
    """A push button that calls ``slot()`` when clicked."""
    widget = QPushButton(text)
    widget.setToolTip(tooltip)
    widget.clicked.connect(lambda: slot())
    return widget


def swatch_icon(rgba: np.ndarray, symbol: str, size: int = SWATCH) -> QIcon:
    """The group's symbol as the points layer draws it: an outline in its colour."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setPen(QPen(QColor.fromRgbF(*map(float, rgba)), 2.5))
    m, c = 2.5, size / 2
    if symbol == "diamond":
        painter.drawPolygon(QPolygonF([QPointF(c, m), QPointF(size - m, c), QPointF(c, size - m), QPointF(m, c)]))
    elif symbol == "x":
        painter.drawLine(QPointF(m, m), QPointF(size - m, size - m))
        painter.drawLine(QPointF(m, size - m), QPointF(size - m, m))
    else:
        painter.drawEllipse(QPointF(c, c), c - m, c - m)
    painter.end()
    return QIcon(pixmap)


def average_icon(volume: np.ndarray, size: int = THUMB) -> QIcon:
    """The central XY slice of an average, 1-99 percentile contrast, as a grey icon."""
    image = np.asarray(volume[volume.shape[0] // 2], dtype=np.float32)
    low, high = contrast_limits(image)
    grey = np.ascontiguousarray(np.clip((image - low) / max(high - low, 1e-12), 0, 1)[::-1] * 255, dtype=np.uint8)
    qimage = QImage(grey.data, grey.shape[1], grey.shape[0], grey.shape[1], QImage.Format_Grayscale8).copy()
    return QIcon(QPixmap.fromImage(qimage).scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation))
