# The image of examples/batched-model (its manifest names asya/batched-model:latest): python3 with
# CPU-only torch and classifier.py. The rendered pod runs the bundled runtime from ConfigMap
# asya-runtime; it imports ASYA_HANDLER's module from its working directory (/app).
#
#   docker build -f deploy/examples/batched-model.Dockerfile -t <registry>/batched-model:0.1.0 examples
#   docker push <registry>/batched-model:0.1.0
#   asya render examples/batched-model --transport rabbitmq --namespace asya --no-end-actors \
#       --image asya/batched-model:latest=<registry>/batched-model:0.1.0 | kubectl apply -f -
FROM python:3.11-slim
RUN pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/cpu
WORKDIR /app
COPY batched-model/classifier.py /app/
