FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DEBUG=true python manage.py collectstatic --noinput
RUN useradd --create-home loopsync && mkdir -p var && chown loopsync var
USER loopsync
EXPOSE 8000
CMD ["gunicorn", "loopsync.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
